/** A parsed BTF blob and the lookups the monitor needs: types by name, sizes, member offsets, per-CPU variables. */
import { BtfError } from './errors.js'
import { type BaseBtf, type BtfHeader, BtfTable } from './parse.js'
import type { BtfComposite, BtfEnum, BtfKind, BtfMember, BtfType } from './types.js'

/** Longest typedef/modifier/array chain followed before calling it a cycle (libbpf stops at 32). */
export const MAX_CHAIN = 64
/** Pointer size of the guests ktstr runs (x86-64). */
export const POINTER_SIZE = 8

const MODIFIERS = new Set<string>(['CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG', 'TYPEDEF'])

export interface MemberLocation {
  /** Offset from the start of the outer type. */
  bitOffset: number
  /** `bitOffset / 8`, rounded down (a bitfield may start inside a byte). */
  offset: number
  /** The member's type id (as declared: typedefs and modifiers kept). */
  type: number
  /** Width of a bitfield member, else 0. */
  bitfieldSize: number
}

export interface PercpuVar {
  name: string
  /** Offset inside `.data..percpu`: add a CPU's `__per_cpu_offset` to the symbol base to reach its copy. */
  offset: number
  size: number
  /** The variable's type id. */
  type: number
}

export class Btf implements BaseBtf {
  readonly base: Btf | undefined
  private readonly table: BtfTable
  private all: BtfType[] | undefined
  /** Type ids by name, for the names looked up so far. */
  private readonly named = new Map<string, number[]>()
  private percpu: Map<string, PercpuVar> | undefined

  /** Parse `data`; pass `base` for split BTF (a module's or a program's on top of vmlinux). */
  static parse(data: Uint8Array, base?: Btf): Btf {
    return new Btf(data, base)
  }

  private constructor(data: Uint8Array, base: Btf | undefined) {
    this.table = new BtfTable(data, base)
    this.base = base
  }

  get header(): BtfHeader {
    return this.table.header
  }

  /** Id of this blob's first type: 1, or the base's type count for split BTF. */
  get firstId(): number {
    return this.table.firstId
  }

  /** Number of type ids, void (0) and the base's included. */
  get typeCount(): number {
    return this.table.firstId + this.table.count
  }

  get strLen(): number {
    return (this.base?.strLen ?? 0) + this.table.strings.length
  }

  str(off: number): string {
    return this.table.str(off)
  }

  /** Every type of this blob (not the base's), in id order. */
  get types(): BtfType[] {
    if (!this.all) this.all = Array.from({ length: this.table.count }, (_, i) => this.table.type(i))
    return this.all
  }

  /** The type of `id`; undefined for void (0). */
  type(id: number): BtfType | undefined {
    if (id === 0) return undefined
    if (id < this.firstId) return this.base!.type(id)
    if (!Number.isInteger(id) || id >= this.typeCount) throw new BtfError(`BTF type id ${id} does not exist (the last is ${this.typeCount - 1})`)
    return this.table.type(id - this.firstId)
  }

  /** The type of `id`, which must not be void. */
  get(id: number): BtfType {
    const t = this.type(id)
    if (!t) throw new BtfError('BTF type id 0 is void, not a type')
    return t
  }

  /** All types named `name` (of `kind` if given), base first. */
  byName(name: string, kind?: BtfKind): BtfType[] {
    let ids = this.named.get(name)
    if (!ids) {
      ids = this.table.indicesNamed(name).map((i) => this.firstId + i)
      this.named.set(name, ids)
    }
    const all = [...(this.base?.byName(name) ?? []), ...ids.map((id) => this.get(id))]
    return kind ? all.filter((t) => t.kind === kind) : all
  }

  /** The one type named `name` of `kind` (the first with a body when there are forward declarations). */
  find(name: string, kind: BtfKind): BtfType {
    const t = this.byName(name, kind)[0]
    if (!t) throw new BtfError(`the kernel's BTF has no ${kind.toLowerCase()} named '${name}'`)
    return t
  }

  /** The value of `valueName` in `enum enumName` (32-bit enums), undefined when either is absent. */
  enumValue(enumName: string, valueName: string): number | undefined {
    for (const t of this.byName(enumName, 'ENUM')) {
      const v = (t as BtfEnum).values.find((e) => e.name === valueName)
      if (v) return v.value
    }
    return undefined
  }

  /** `struct name` as a composite type. */
  struct(name: string): BtfComposite {
    return this.find(name, 'STRUCT') as BtfComposite
  }

  /** Follows typedefs, const/volatile/restrict and type tags to the type underneath (0 for void). */
  strip(id: number): number {
    let cur = id
    for (let i = 0; i < MAX_CHAIN; i++) {
      const t = this.type(cur)
      if (!t || !MODIFIERS.has(t.kind)) return cur
      cur = (t as { type: number }).type
    }
    throw new BtfError(`BTF type [${id}] has a typedef/modifier chain longer than ${MAX_CHAIN} (a cycle?)`)
  }

  /** The stripped type of `id`, or undefined for void. */
  resolved(id: number): BtfType | undefined {
    return this.type(this.strip(id))
  }

  /** Size in bytes of a value of type `id`. */
  sizeOf(id: number, depth = 0): number {
    if (depth > MAX_CHAIN) throw new BtfError(`BTF type [${id}] nests deeper than ${MAX_CHAIN} (a cycle?)`)
    const t = this.type(id)
    if (!t) throw new BtfError('void has no size')
    switch (t.kind) {
      case 'INT':
      case 'ENUM':
      case 'ENUM64':
      case 'STRUCT':
      case 'UNION':
      case 'FLOAT':
      case 'DATASEC':
        return t.size
      case 'PTR':
        return POINTER_SIZE
      case 'ARRAY':
        return t.nelems * this.sizeOf(t.type, depth + 1)
      case 'TYPEDEF':
      case 'CONST':
      case 'VOLATILE':
      case 'RESTRICT':
      case 'TYPE_TAG':
      case 'VAR':
        return this.sizeOf(t.type, depth + 1)
      default:
        throw new BtfError(`BTF type [${id}] is a ${t.kind}, which has no size`)
    }
  }

  /**
   * Where `path` (`scx.local_dsq.nr`, `cpus[1].weight`) lies inside type `id` or the struct named
   * so: members of anonymous structs and unions are found as C finds them.
   */
  member(outer: number | string, path: string): MemberLocation {
    let typeId = typeof outer === 'string' ? this.struct(outer).id : outer
    let bitOffset = 0
    let bitfieldSize = 0
    const what = typeof outer === 'string' ? `struct ${outer}` : `type [${outer}]`
    for (const seg of parsePath(path, what)) {
      if (seg.name !== undefined) {
        const t = this.resolved(typeId)
        if (!t || (t.kind !== 'STRUCT' && t.kind !== 'UNION')) throw new BtfError(`${what}: cannot take member '${seg.name}' of a ${t?.kind ?? 'void'} in '${path}'`)
        const found = this.findMember(t, seg.name, 0)
        if (!found) throw new BtfError(`${what}: ${t.kind.toLowerCase()} ${t.name || '(anon)'} has no member '${seg.name}' (in '${path}')`)
        bitOffset += found.bitOffset
        typeId = found.member.type
        bitfieldSize = found.member.bitfieldSize
      } else {
        const t = this.resolved(typeId)
        if (t?.kind !== 'ARRAY') throw new BtfError(`${what}: cannot index a ${t?.kind ?? 'void'} in '${path}'`)
        if (seg.index >= t.nelems) throw new BtfError(`${what}: index ${seg.index} is past the ${t.nelems} elements in '${path}'`)
        bitOffset += seg.index * this.sizeOf(t.type) * 8
        typeId = t.type
        bitfieldSize = 0
      }
    }
    return { bitOffset, offset: Math.floor(bitOffset / 8), type: typeId, bitfieldSize }
  }

  private findMember(t: BtfComposite, name: string, depth: number): { member: BtfMember; bitOffset: number } | undefined {
    if (depth > MAX_CHAIN) throw new BtfError(`BTF ${t.kind.toLowerCase()} [${t.id}] nests anonymous members deeper than ${MAX_CHAIN} (a cycle?)`)
    const direct = t.members.find((m) => m.name === name)
    if (direct) return { member: direct, bitOffset: direct.bitsOffset }
    for (const m of t.members) {
      if (m.name) continue
      const inner = this.resolved(m.type)
      if (inner?.kind !== 'STRUCT' && inner?.kind !== 'UNION') continue
      const found = this.findMember(inner, name, depth + 1)
      if (found) return { member: found.member, bitOffset: m.bitsOffset + found.bitOffset }
    }
    return undefined
  }

  /** Variables of the `.data..percpu` section by name (empty when the BTF has none). */
  percpuVars(): Map<string, PercpuVar> {
    if (this.percpu) return this.percpu
    const out = new Map<string, PercpuVar>()
    for (const sec of this.byName('.data..percpu', 'DATASEC')) {
      if (sec.kind !== 'DATASEC') continue
      for (const v of sec.vars) {
        const t = this.type(v.type)
        if (t?.kind === 'VAR') out.set(t.name, { name: t.name, offset: v.offset, size: v.size, type: t.type })
      }
    }
    this.percpu = out
    return out
  }

  /** The `.data..percpu` offset of `name` (e.g. `runqueues`). */
  percpuVar(name: string): PercpuVar {
    const v = this.percpuVars().get(name)
    if (!v) throw new BtfError(`the kernel's BTF has no per-CPU variable '${name}' in .data..percpu`)
    return v
  }
}

type Segment = { name: string; index?: undefined } | { name?: undefined; index: number }

function parsePath(path: string, what: string): Segment[] {
  const out: Segment[] = []
  const re = /\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]/y
  let at = 0
  while (at < path.length) {
    re.lastIndex = at
    const m = re.exec(path)
    if (!m || (m[1] !== undefined && at > 0 && path[at] !== '.') || (m[1] !== undefined && at === 0 && path[0] === '.')) {
      throw new BtfError(`${what}: bad member path '${path}' at character ${at + 1}; write it as in C, e.g. scx.local_dsq.nr or cpus[1].x`)
    }
    out.push(m[1] !== undefined ? { name: m[1] } : { index: Number(m[2]) })
    at = re.lastIndex
  }
  if (out.length === 0) throw new BtfError(`${what}: empty member path`)
  return out
}
