/** Building the object of one type record (the table has checked its length, ids and names). */
import { type BtfMember, type BtfType, KIND_NAMES } from './types.js'

/** Bytes of the record part common to all kinds (name_off, info, size/type). */
export const TYPE_LEN = 12

/** The type whose record starts at byte `o` of the type section `v`. */
export function buildType(v: DataView, o: number, id: number, str: (off: number) => string): BtfType {
  const u32 = (at: number) => v.getUint32(at, true)
  const nameOff = u32(o)
  const info = u32(o + 4)
  const sizeType = u32(o + 8)
  const vlen = info & 0xffff
  const kindFlag = info >>> 31 === 1
  const kind = KIND_NAMES[(info >>> 24) & 0x1f] as BtfType['kind']
  const rec = o + TYPE_LEN
  const b = { id, name: str(nameOff), nameOff, kindFlag }
  const named = (at: number) => {
    const off = u32(at)
    return { name: str(off), nameOff: off }
  }
  const list = <T>(stride: number, f: (at: number) => T): T[] => {
    const out: T[] = []
    for (let i = 0; i < vlen; i++) out.push(f(rec + i * stride))
    return out
  }
  switch (kind) {
    case 'INT': {
      const x = u32(rec)
      return { ...b, kind, size: sizeType, encoding: (x >>> 24) & 0x0f, bitsOffset: (x >>> 16) & 0xff, bits: x & 0xff }
    }
    case 'PTR':
    case 'TYPEDEF':
    case 'VOLATILE':
    case 'CONST':
    case 'RESTRICT':
    case 'TYPE_TAG':
      return { ...b, kind, type: sizeType }
    case 'ARRAY':
      return { ...b, kind, type: u32(rec), indexType: u32(rec + 4), nelems: u32(rec + 8) }
    case 'STRUCT':
    case 'UNION':
      return {
        ...b,
        kind,
        size: sizeType,
        members: list(12, (at): BtfMember => {
          const raw = u32(at + 8)
          return { ...named(at), type: u32(at + 4), bitsOffset: kindFlag ? raw & 0xffffff : raw, bitfieldSize: kindFlag ? raw >>> 24 : 0 }
        }),
      }
    case 'ENUM':
      return { ...b, kind, size: sizeType, signed: kindFlag, values: list(8, (at) => ({ ...named(at), value: kindFlag ? v.getInt32(at + 4, true) : u32(at + 4) })) }
    case 'ENUM64':
      return {
        ...b,
        kind,
        size: sizeType,
        signed: kindFlag,
        values: list(12, (at) => {
          const u = (BigInt(u32(at + 8)) << 32n) | BigInt(u32(at + 4))
          return { ...named(at), value: kindFlag ? BigInt.asIntN(64, u) : u }
        }),
      }
    case 'FWD':
      return { ...b, kind, union: kindFlag }
    case 'FUNC':
      return { ...b, kind, type: sizeType, linkage: vlen }
    case 'FUNC_PROTO':
      return { ...b, kind, returnType: sizeType, params: list(8, (at) => ({ ...named(at), type: u32(at + 4) })) }
    case 'VAR':
      return { ...b, kind, type: sizeType, linkage: u32(rec) }
    case 'DATASEC':
      return { ...b, kind, size: sizeType, vars: list(12, (at) => ({ type: u32(at), offset: u32(at + 4), size: u32(at + 8) })) }
    case 'FLOAT':
      return { ...b, kind, size: sizeType }
    case 'DECL_TAG':
      return { ...b, kind, type: sizeType, componentIdx: v.getInt32(rec, true) }
  }
}
