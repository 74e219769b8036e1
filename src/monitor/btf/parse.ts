/**
 * Parsing a BTF blob (Documentation/bpf/btf.rst, include/uapi/linux/btf.h): header, string
 * section and every type record. Everything is bounds-checked; bad input is a BtfError.
 */
import { BtfError } from './errors.js'
import { type BtfMember, type BtfType, KIND_NAMES } from './types.js'

export const BTF_MAGIC = 0xeb9f
const HEADER_LEN = 24
const TYPE_LEN = 12

export interface BtfHeader {
  version: number
  flags: number
  hdrLen: number
  typeOff: number
  typeLen: number
  strOff: number
  strLen: number
}

export interface ParsedBtf {
  header: BtfHeader
  /** Types of this blob, in id order (the first has id `firstId`). */
  types: BtfType[]
  /** 1 for a standalone blob; the base's type count (void included) for split BTF. */
  firstId: number
  /** The string section as bytes; offsets of a split blob start at the base's strLen. */
  strings: Uint8Array
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

export function parseBtf(data: Uint8Array, base?: BaseBtf): ParsedBtf {
  const header = parseHeader(data)
  const strings = data.subarray(header.hdrLen + header.strOff, header.hdrLen + header.strOff + header.strLen)
  if (strings.length > 0 && strings[strings.length - 1] !== 0) throw new BtfError('BTF string section does not end with a NUL byte')
  if (!base && strings.length > 0 && strings[0] !== 0) throw new BtfError('BTF string section does not start with the empty string')
  const firstId = base ? base.typeCount : 1
  const strBase = base ? base.strLen : 0
  const decoder = new TextDecoder()
  const cache = new Map<number, string>()
  const str = (off: number, what: string): string => {
    if (off === 0) return ''
    if (off < strBase) return base!.str(off)
    const local = off - strBase
    if (local >= strings.length) throw new BtfError(`BTF ${what} has name offset ${off}, outside the string section (${strBase + strings.length} bytes)`)
    let s = cache.get(local)
    if (s === undefined) {
      const end = strings.indexOf(0, local)
      s = decoder.decode(strings.subarray(local, end))
      cache.set(local, s)
    }
    return s
  }

  const sec = data.subarray(header.hdrLen + header.typeOff, header.hdrLen + header.typeOff + header.typeLen)
  const v = new DataView(sec.buffer, sec.byteOffset, sec.byteLength)
  const types: BtfType[] = []
  let o = 0
  while (o < sec.length) {
    const id = firstId + types.length
    if (o + TYPE_LEN > sec.length) throw new BtfError(`BTF is truncated: type [${id}] at byte ${o} of the type section is cut off`)
    const nameOff = v.getUint32(o, true)
    const info = v.getUint32(o + 4, true)
    const sizeType = v.getUint32(o + 8, true)
    const vlen = info & 0xffff
    const kindNo = (info >>> 24) & 0x1f
    const kindFlag = info >>> 31 === 1
    const kind = KIND_NAMES[kindNo]
    if (kind === undefined || kind === 'UNKN') throw new BtfError(`BTF type [${id}] has unknown kind ${kindNo}`)
    const extra = extraLen(kind, vlen)
    const rec = o + TYPE_LEN
    if (rec + extra > sec.length) throw new BtfError(`BTF is truncated: type [${id}] (${kind}) needs ${extra} bytes past the end of the type section`)
    const name = str(nameOff, `type [${id}]`)
    const b = { id, name, nameOff, kindFlag }
    const u32 = (at: number) => v.getUint32(rec + at, true)
    const member = (i: number): BtfMember => {
      const mOff = u32(i * 12)
      const raw = u32(i * 12 + 8)
      return {
        name: str(mOff, `member ${i} of type [${id}]`),
        nameOff: mOff,
        type: u32(i * 12 + 4),
        bitsOffset: kindFlag ? raw & 0xffffff : raw,
        bitfieldSize: kindFlag ? raw >>> 24 : 0,
      }
    }
    const named = (i: number, stride: number) => {
      const off = u32(i * stride)
      return { name: str(off, `entry ${i} of type [${id}]`), nameOff: off }
    }
    let t: BtfType
    switch (kind) {
      case 'INT': {
        const x = u32(0)
        t = { ...b, kind, size: sizeType, encoding: (x >>> 24) & 0x0f, bitsOffset: (x >>> 16) & 0xff, bits: x & 0xff }
        break
      }
      case 'PTR':
      case 'TYPEDEF':
      case 'VOLATILE':
      case 'CONST':
      case 'RESTRICT':
      case 'TYPE_TAG':
        t = { ...b, kind, type: sizeType }
        break
      case 'ARRAY':
        t = { ...b, kind, type: u32(0), indexType: u32(4), nelems: u32(8) }
        break
      case 'STRUCT':
      case 'UNION':
        t = { ...b, kind, size: sizeType, members: Array.from({ length: vlen }, (_, i) => member(i)) }
        break
      case 'ENUM':
        t = {
          ...b,
          kind,
          size: sizeType,
          signed: kindFlag,
          values: Array.from({ length: vlen }, (_, i) => ({ ...named(i, 8), value: kindFlag ? v.getInt32(rec + i * 8 + 4, true) : u32(i * 8 + 4) })),
        }
        break
      case 'ENUM64':
        t = {
          ...b,
          kind,
          size: sizeType,
          signed: kindFlag,
          values: Array.from({ length: vlen }, (_, i) => {
            const u = (BigInt(u32(i * 12 + 8)) << 32n) | BigInt(u32(i * 12 + 4))
            return { ...named(i, 12), value: kindFlag ? BigInt.asIntN(64, u) : u }
          }),
        }
        break
      case 'FWD':
        t = { ...b, kind, union: kindFlag }
        break
      case 'FUNC':
        t = { ...b, kind, type: sizeType, linkage: vlen }
        break
      case 'FUNC_PROTO':
        t = { ...b, kind, returnType: sizeType, params: Array.from({ length: vlen }, (_, i) => ({ ...named(i, 8), type: u32(i * 8 + 4) })) }
        break
      case 'VAR':
        t = { ...b, kind, type: sizeType, linkage: u32(0) }
        break
      case 'DATASEC':
        t = { ...b, kind, size: sizeType, vars: Array.from({ length: vlen }, (_, i) => ({ type: u32(i * 12), offset: u32(i * 12 + 4), size: u32(i * 12 + 8) })) }
        break
      case 'FLOAT':
        t = { ...b, kind, size: sizeType }
        break
      case 'DECL_TAG':
        t = { ...b, kind, type: sizeType, componentIdx: v.getInt32(rec, true) }
        break
    }
    types.push(t)
    o = rec + extra
  }
  checkRefs(types, firstId + types.length)
  return { header, types, firstId, strings }
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

/** Every type id a record names must exist (0 is void). */
function checkRefs(types: BtfType[], count: number): void {
  const check = (id: number, from: BtfType, what: string) => {
    if (id >= count) throw new BtfError(`BTF type [${from.id}] (${from.kind}) refers to ${what} type id ${id}, but the last id is ${count - 1}`)
  }
  for (const t of types) {
    switch (t.kind) {
      case 'ARRAY':
        check(t.type, t, 'element')
        check(t.indexType, t, 'index')
        break
      case 'STRUCT':
      case 'UNION':
        for (const m of t.members) check(m.type, t, `member '${m.name}'`)
        break
      case 'FUNC_PROTO':
        check(t.returnType, t, 'return')
        for (const p of t.params) check(p.type, t, 'parameter')
        break
      case 'DATASEC':
        for (const s of t.vars) check(s.type, t, 'variable')
        break
      case 'INT':
      case 'ENUM':
      case 'ENUM64':
      case 'FWD':
      case 'FLOAT':
        break
      default:
        check(t.type, t, 'its')
    }
  }
}
