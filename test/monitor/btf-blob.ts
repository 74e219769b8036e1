/** Hand-built BTF blobs for the reader's unit tests. */
import { KIND_NAMES } from '../../src/monitor/btf/index.js'

type Kind = (typeof KIND_NAMES)[number]

export class BtfBuilder {
  private strs: string[] = ['']
  private strOffsets = new Map<string, number>([['', 0]])
  private strLen = 1
  private words: number[] = []
  private count = 0

  constructor(private readonly base?: { typeCount: number; strLen: number }) {
    if (base) {
      // Split BTF: own strings follow the base's, own types follow the base's.
      this.strs = []
      this.strLen = 0
      this.strOffsets.clear()
    }
  }

  str(s: string): number {
    if (s === '') return 0
    const have = this.strOffsets.get(s)
    if (have !== undefined) return have
    const off = (this.base?.strLen ?? 0) + this.strLen
    this.strs.push(s)
    this.strOffsets.set(s, off)
    this.strLen += Buffer.byteLength(s) + 1
    return off
  }

  /** Adds a type record; returns its id. `extra` are the u32 words after the 12-byte header. */
  add(kind: Kind, name: string, sizeOrType: number, opts: { vlen?: number; kflag?: boolean; extra?: number[] } = {}): number {
    const info = ((opts.kflag ? 1 : 0) << 31) | (KIND_NAMES.indexOf(kind) << 24) | (opts.vlen ?? 0)
    this.words.push(this.str(name), info >>> 0, sizeOrType >>> 0, ...(opts.extra ?? []).map((w) => w >>> 0))
    return (this.base?.typeCount ?? 1) + this.count++
  }

  int(name: string, size: number, bits = size * 8, signed = false, bool = false): number {
    return this.add('INT', name, size, { extra: [((signed ? 1 : 0) | (bool ? 4 : 0)) * 2 ** 24 + bits] })
  }

  struct(name: string, size: number, members: [string, number, number, number?][], kind: 'STRUCT' | 'UNION' = 'STRUCT'): number {
    const kflag = members.some((m) => m[3] !== undefined)
    const extra = members.flatMap(([n, t, bitOff, bitSize]) => [this.str(n), t, kflag ? (bitSize ?? 0) * 2 ** 24 + bitOff : bitOff])
    return this.add(kind, name, size, { vlen: members.length, kflag, extra })
  }

  blob(opts: { magic?: number; version?: number } = {}): Uint8Array {
    const types = Buffer.alloc(this.words.length * 4)
    this.words.forEach((w, i) => types.writeUInt32LE(w, i * 4))
    const strings = Buffer.from(this.strs.map((s) => `${s}\0`).join(''), 'utf8')
    const h = Buffer.alloc(24)
    h.writeUInt16LE(opts.magic ?? 0xeb9f, 0)
    h[2] = opts.version ?? 1
    h.writeUInt32LE(24, 4)
    h.writeUInt32LE(0, 8)
    h.writeUInt32LE(types.length, 12)
    h.writeUInt32LE(types.length, 16)
    h.writeUInt32LE(strings.length, 20)
    return new Uint8Array(Buffer.concat([h, types, strings]))
  }
}

/** A small kernel-like BTF: ints, a typedef, an enum, a struct with bitfields and an anonymous union, a per-CPU DATASEC. */
export function sample() {
  const b = new BtfBuilder()
  const u32 = b.int('unsigned int', 4)
  const s64 = b.int('long long int', 8, 64, true)
  const u64 = b.int('long long unsigned int', 8)
  const char = b.int('char', 1)
  const bool = b.int('_Bool', 1, 8, false, true)
  const u32t = b.add('TYPEDEF', 'u32', u32)
  const cu32 = b.add('CONST', '', u32t)
  const state = b.add('ENUM', 'state', 4, { vlen: 2, extra: [b.str('IDLE'), 0, b.str('BUSY'), 7] })
  const big = b.add('ENUM64', 'big', 8, { vlen: 1, extra: [b.str('HUGE'), 0, 0x80000000] })
  const name = b.add('ARRAY', '', char, { extra: [char, u32, 8] })
  const pair = b.add('ARRAY', '', u32t, { extra: [u32t, u32, 2] })
  const inner = b.struct('', 8, [
    ['lo', u32, 0],
    ['hi', u32, 32],
  ])
  const anon = b.struct(
    '',
    8,
    [
      ['whole', u64, 0],
      ['', inner, 0],
    ],
    'UNION',
  )
  const ptr = b.add('PTR', '', 0)
  const task = b.struct('task', 48, [
    ['pid', cu32, 0],
    ['on', bool, 32],
    ['nice', s64, 64],
    ['comm', name, 128],
    ['st', state, 192],
    ['', anon, 256],
    ['ptr', ptr, 320],
    ['pair', pair, 384, 0],
    ['flag', u32, 448, 1],
    ['level', u32, 449, 3],
    ['neg', s64, 452, 4],
  ])
  const fwd = b.add('FWD', 'later', 0, { kflag: true })
  const proto = b.add('FUNC_PROTO', '', u32, { vlen: 1, extra: [b.str('arg'), task] })
  const fn = b.add('FUNC', 'do_it', proto, { vlen: 1 })
  const volat = b.add('VOLATILE', '', u32)
  const restr = b.add('RESTRICT', '', ptr)
  const tag = b.add('TYPE_TAG', 'user', ptr)
  const decl = b.add('DECL_TAG', 'kfunc', fn, { extra: [0xffffffff] })
  const dbl = b.add('FLOAT', 'double', 8)
  const v1 = b.add('VAR', 'runqueues', task, { extra: [1] })
  const v2 = b.add('VAR', 'this_cpu_off', u64, { extra: [0] })
  // Signed enums, a CHAR-encoded int and a static FUNC: the rarer spellings of bpftool's raw format.
  b.add('ENUM', 'sgn', 4, { kflag: true, vlen: 1, extra: [b.str('NEG'), -2] })
  b.add('ENUM64', 'sgn64', 8, { kflag: true, vlen: 1, extra: [b.str('NEG64'), 0xfffffffe, 0xffffffff] })
  b.int('signed char', 1, 8, false)
  b.add('INT', 'uchar', 1, { extra: [2 * 2 ** 24 + 8] })
  b.add('FUNC', 'local', proto, { vlen: 0 })
  const sec = b.add('DATASEC', '.data..percpu', 64, { vlen: 2, extra: [v1, 0, 48, v2, 48, 8] })
  return { b, ids: { pair, ptr, u32, s64, u64, char, bool, u32t, cu32, state, big, task, inner, anon, fwd, proto, fn, volat, restr, tag, decl, dbl, v1, v2, sec } }
}
