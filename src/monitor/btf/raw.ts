/** The lines `bpftool btf dump file <blob>` (raw format) prints, for tests and debugging. */
import type { Btf } from './btf.js'
import { type BtfType, INT_BOOL, INT_CHAR, INT_SIGNED } from './types.js'

const LINKAGE = ['static', 'global', 'extern']

function q(name: string): string {
  return `'${name || '(anon)'}'`
}

function intEncoding(e: number): string {
  if (e === 0) return '(none)'
  if (e === INT_SIGNED) return 'SIGNED'
  if (e === INT_CHAR) return 'CHAR'
  if (e === INT_BOOL) return 'BOOL'
  return 'UNKN'
}

/** One type as bpftool prints it: a header line, then one tab-indented line per member/value/param/variable. */
export function rawLines(btf: Btf, t: BtfType): string[] {
  const head = `[${t.id}] ${t.kind} ${q(t.name)}`
  switch (t.kind) {
    case 'INT':
      return [`${head} size=${t.size} bits_offset=${t.bitsOffset} nr_bits=${t.bits} encoding=${intEncoding(t.encoding)}`]
    case 'PTR':
    case 'CONST':
    case 'VOLATILE':
    case 'RESTRICT':
    case 'TYPEDEF':
    case 'TYPE_TAG':
      return [`${head} type_id=${t.type}`]
    case 'ARRAY':
      return [`${head} type_id=${t.type} index_type_id=${t.indexType} nr_elems=${t.nelems}`]
    case 'STRUCT':
    case 'UNION':
      return [
        `${head} size=${t.size} vlen=${t.members.length}`,
        ...t.members.map((m) => `\t${q(m.name)} type_id=${m.type} bits_offset=${m.bitsOffset}${m.bitfieldSize ? ` bitfield_size=${m.bitfieldSize}` : ''}`),
      ]
    case 'ENUM':
    case 'ENUM64': {
      const suffix = t.kind === 'ENUM' ? '' : t.signed ? 'LL' : 'ULL'
      return [`${head} encoding=${t.signed ? 'SIGNED' : 'UNSIGNED'} size=${t.size} vlen=${t.values.length}`, ...t.values.map((v) => `\t${q(v.name)} val=${v.value}${suffix}`)]
    }
    case 'FWD':
      return [`${head} fwd_kind=${t.union ? 'union' : 'struct'}`]
    case 'FUNC':
      return [`${head} type_id=${t.type} linkage=${LINKAGE[t.linkage] ?? '(unknown)'}`]
    case 'FUNC_PROTO':
      return [`${head} ret_type_id=${t.returnType} vlen=${t.params.length}`, ...t.params.map((p) => `\t${q(p.name)} type_id=${p.type}`)]
    case 'VAR':
      return [`${head} type_id=${t.type}, linkage=${LINKAGE[t.linkage] ?? '(unknown)'}`]
    case 'DATASEC':
      return [
        `${head} size=${t.size} vlen=${t.vars.length}`,
        ...t.vars.map((v) => {
          const vt = btf.type(v.type)
          // bpftool names void as the UNKNOWN kind.
          return `\ttype_id=${v.type} offset=${v.offset} size=${v.size} (${vt ? vt.kind : 'UNKNOWN'} ${q(vt?.name ?? '')})`
        }),
      ]
    case 'FLOAT':
      return [`${head} size=${t.size}`]
    case 'DECL_TAG':
      return [`${head} type_id=${t.type} component_idx=${t.componentIdx}`]
  }
}

/** Every type of the blob (not its base), as `bpftool btf dump file` prints them. */
export function* rawDump(btf: Btf): Generator<string> {
  for (const t of btf.types) yield* rawLines(btf, t)
}
