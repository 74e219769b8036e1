/**
 * Parsing a BTF blob (Documentation/bpf/btf.rst, include/uapi/linux/btf.h): header, string
 * section and every type record. Everything is bounds-checked; bad input is a BtfError.
 */
import { BtfError } from './errors.js'
import { buildType, TYPE_LEN } from './records.js'
import { type BtfType, KIND_NAMES } from './types.js'

export const BTF_MAGIC = 0xeb9f
const HEADER_LEN = 24

export interface BtfHeader {
  version: number
  flags: number
  hdrLen: number
  typeOff: number
  typeLen: number
  strOff: number
  strLen: number
}

export interface BaseBtf {
  /** Number of type ids of the base, void included. */
  typeCount: number
  strLen: number
  str(off: number): string
}

export function parseHeader(data: Uint8Array): BtfHeader {
  if (data.length < HEADER_LEN) throw new BtfError(`BTF is truncated: ${data.length} bytes, the header alone is ${HEADER_LEN}`)
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const magic = v.getUint16(0, true)
  if (magic === 0x9feb) throw new BtfError('BTF is big-endian; only little-endian BTF can be read')
  if (magic !== BTF_MAGIC) throw new BtfError(`not BTF: magic 0x${magic.toString(16)}, expected 0xeb9f`)
  const h: BtfHeader = {
    version: v.getUint8(2),
    flags: v.getUint8(3),
    hdrLen: v.getUint32(4, true),
    typeOff: v.getUint32(8, true),
    typeLen: v.getUint32(12, true),
    strOff: v.getUint32(16, true),
    strLen: v.getUint32(20, true),
  }
  if (h.version !== 1) throw new BtfError(`unsupported BTF version ${h.version} (1 is known)`)
  if (h.hdrLen < HEADER_LEN || h.hdrLen > data.length) throw new BtfError(`bad BTF header length ${h.hdrLen} (blob is ${data.length} bytes)`)
  const body = data.length - h.hdrLen
  if (h.typeOff + h.typeLen > body) throw new BtfError(`BTF is truncated: type section ${h.typeOff}+${h.typeLen} is past the end (${body} bytes after the header)`)
  if (h.strOff + h.strLen > body) throw new BtfError(`BTF is truncated: string section ${h.strOff}+${h.strLen} is past the end (${body} bytes after the header)`)
  if (h.typeOff % 4 !== 0) throw new BtfError(`BTF type section offset ${h.typeOff} is not 4-byte aligned`)
  return h
}

/**
 * The type records of one blob. The constructor walks and checks every record (lengths, kinds,
 * type ids, name offsets) without building objects; `type()` builds a record's object on first use,
 * so opening vmlinux's 70,000 types costs a scan, not 70,000 allocations.
 */
export class BtfTable {
  readonly header: BtfHeader
  /** Id of the first type of this blob: 1, or the base's type count for split BTF. */
  readonly firstId: number
  /** Number of types in this blob. */
  readonly count: number
  readonly strings: Uint8Array
  private readonly strBase: number
  private readonly v: DataView
  private readonly offsets: Uint32Array
  private readonly built: (BtfType | undefined)[]
  private readonly names = new Map<number, string>()
  private readonly decoder = new TextDecoder()

  constructor(
    data: Uint8Array,
    private readonly base?: BaseBtf,
  ) {
    const h = parseHeader(data)
    this.header = h
    this.strings = data.subarray(h.hdrLen + h.strOff, h.hdrLen + h.strOff + h.strLen)
    if (this.strings.length > 0 && this.strings[this.strings.length - 1] !== 0) throw new BtfError('BTF string section does not end with a NUL byte')
    if (!base && this.strings.length > 0 && this.strings[0] !== 0) throw new BtfError('BTF string section does not start with the empty string')
    this.firstId = base ? base.typeCount : 1
    this.strBase = base ? base.strLen : 0
    const sec = data.subarray(h.hdrLen + h.typeOff, h.hdrLen + h.typeOff + h.typeLen)
    this.v = new DataView(sec.buffer, sec.byteOffset, sec.byteLength)
    // At most one record per TYPE_LEN bytes: one typed array, no 70,000-element JS array to grow.
    const offsets = new Uint32Array(Math.floor(sec.length / TYPE_LEN))
    let n = 0
    for (let o = 0; o < sec.length; ) {
      const id = this.firstId + n
      if (o + TYPE_LEN > sec.length) throw new BtfError(`BTF is truncated: type [${id}] at byte ${o} of the type section is cut off`)
      const info = this.v.getUint32(o + 4, true)
      const kind = KIND_NAMES[(info >>> 24) & 0x1f]
      if (kind === undefined || kind === 'UNKN') throw new BtfError(`BTF type [${id}] has unknown kind ${(info >>> 24) & 0x1f}`)
      const extra = extraLen(kind, info & 0xffff)
      if (o + TYPE_LEN + extra > sec.length) throw new BtfError(`BTF is truncated: type [${id}] (${kind}) needs ${extra} bytes past the end of the type section`)
      offsets[n++] = o
      o += TYPE_LEN + extra
    }
    this.offsets = offsets.subarray(0, n)
    this.count = n
    this.built = new Array(this.count)
    for (let i = 0; i < this.count; i++) this.check(i)
  }

  private u32(at: number): number {
    return this.v.getUint32(at, true)
  }

  /** A name at string offset `off` ('' for 0); offsets below the base's length are the base's. */
  str(off: number, what = 'a name'): string {
    if (off === 0) return ''
    if (off < this.strBase) return this.base!.str(off)
    let s = this.names.get(off)
    if (s === undefined) {
      const local = off - this.strBase
      if (local >= this.strings.length) throw new BtfError(`BTF ${what} has name offset ${off}, outside the string section (${this.strBase + this.strings.length} bytes)`)
      s = this.decoder.decode(this.strings.subarray(local, this.strings.indexOf(0, local)))
      this.names.set(off, s)
    }
    return s
  }

  /**
   * Indices (0-based in this blob) of the types named `name`, found by comparing bytes in the
   * string section: no name is decoded, so one lookup costs a pass over the records (~1 ms for
   * vmlinux) instead of an index of all 70,000 names (~50 ms and its garbage).
   */
  indicesNamed(name: string): number[] {
    const want = new TextEncoder().encode(name)
    const out: number[] = []
    if (want.length === 0) return out
    const strs = this.strings
    const first = want[0]!
    for (let i = 0; i < this.count; i++) {
      const off = this.u32(this.offsets[i]!)
      if (off === 0) continue
      if (off < this.strBase) {
        if (this.base!.str(off) === name) out.push(i)
        continue
      }
      const at = off - this.strBase
      if (strs[at] !== first || strs[at + want.length] !== 0) continue
      let j = 1
      while (j < want.length && strs[at + j] === want[j]) j++
      if (j === want.length) out.push(i)
    }
    return out
  }

  /** Checks the ids and name offsets one record names, reading words only. */
  private check(index: number): void {
    // Messages are built only on failure: vmlinux has ~400,000 members, enumerators and parameters.
    const o = this.offsets[index]!
    const id = this.firstId + index
    const info = this.u32(o + 4)
    const kind = KIND_NAMES[(info >>> 24) & 0x1f]!
    const vlen = info & 0xffff
    const rec = o + TYPE_LEN
    const limit = this.firstId + this.count
    const strEnd = this.strBase + this.strings.length
    const badName = (off: number, what: string) => new BtfError(`BTF ${what} has name offset ${off}, outside the string section (${strEnd} bytes)`)
    const badRef = (t: number, what: string) => new BtfError(`BTF type [${id}] (${kind}) refers to ${what} type id ${t}, but the last id is ${limit - 1}`)
    if (this.u32(o) >= strEnd) throw badName(this.u32(o), `type [${id}]`)
    switch (kind) {
      case 'ARRAY':
        if (this.u32(rec) >= limit) throw badRef(this.u32(rec), 'element')
        if (this.u32(rec + 4) >= limit) throw badRef(this.u32(rec + 4), 'index')
        break
      case 'STRUCT':
      case 'UNION':
        for (let i = 0, m = rec; i < vlen; i++, m += 12) {
          if (this.u32(m) >= strEnd) throw badName(this.u32(m), `member ${i} of type [${id}]`)
          if (this.u32(m + 4) >= limit) throw badRef(this.u32(m + 4), `member '${this.str(this.u32(m))}'`)
        }
        break
      case 'ENUM':
      case 'ENUM64':
        for (let i = 0, stride = kind === 'ENUM' ? 8 : 12; i < vlen; i++)
          if (this.u32(rec + i * stride) >= strEnd) throw badName(this.u32(rec + i * stride), `enumerator ${i} of type [${id}]`)
        break
      case 'FUNC_PROTO':
        if (this.u32(o + 8) >= limit) throw badRef(this.u32(o + 8), 'return')
        for (let i = 0, p = rec; i < vlen; i++, p += 8) {
          if (this.u32(p) >= strEnd) throw badName(this.u32(p), `parameter ${i} of type [${id}]`)
          if (this.u32(p + 4) >= limit) throw badRef(this.u32(p + 4), `parameter ${i}`)
        }
        break
      case 'DATASEC':
        for (let i = 0; i < vlen; i++) if (this.u32(rec + i * 12) >= limit) throw badRef(this.u32(rec + i * 12), `variable ${i}`)
        break
      case 'INT':
      case 'FWD':
      case 'FLOAT':
        break
      default:
        if (this.u32(o + 8) >= limit) throw badRef(this.u32(o + 8), 'its')
    }
  }

  /** The type at `index` (0-based in this blob), built on first use. */
  type(index: number): BtfType {
    let t = this.built[index]
    if (!t) {
      t = buildType(this.v, this.offsets[index]!, this.firstId + index, (off) => this.str(off))
      this.built[index] = t
    }
    return t
  }
}

/** Bytes after the common 12-byte record, per kind. */
function extraLen(kind: string, vlen: number): number {
  switch (kind) {
    case 'INT':
    case 'VAR':
    case 'DECL_TAG':
      return 4
    case 'ARRAY':
      return 12
    case 'STRUCT':
    case 'UNION':
    case 'DATASEC':
    case 'ENUM64':
      return 12 * vlen
    case 'ENUM':
    case 'FUNC_PROTO':
      return 8 * vlen
    default:
      return 0
  }
}
