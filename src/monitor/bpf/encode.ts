/**
 * A plain JS value → bytes of a BTF type, the inverse of btf/decode.ts: numbers/bigints into
 * integers (range-checked), booleans, enum names or numbers, strings into char arrays, arrays,
 * objects into structs/unions/DATASECs. It writes over `into` (the current bytes), so an object
 * that names only some members, or an array shorter than the type, leaves the rest as it was.
 */
import { type Btf, BtfError, type BtfType, INT_BOOL, INT_CHAR, INT_SIGNED } from '../btf/index.js'
import { BpfMapError } from './errors.js'

const MAX_DEPTH = 64

function what(t: BtfType): string {
  return `${t.kind === 'STRUCT' || t.kind === 'UNION' || t.kind === 'ENUM' ? `${t.kind.toLowerCase()} ` : ''}${t.name || t.kind.toLowerCase()}`
}

function shown(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'string') return JSON.stringify(v)
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Uint8Array) return `${v.length} bytes`
  return v !== null && typeof v === 'object' ? 'an object' : String(v)
}

function writeBits(into: Uint8Array, bitOff: number, nbits: number, v: bigint): void {
  for (let i = 0; i < nbits; i++) {
    const bit = bitOff + i
    const byte = bit >> 3
    const mask = 1 << (bit & 7)
    if ((v >> BigInt(i)) & 1n) into[byte]! |= mask
    else into[byte]! &= ~mask
  }
}

/** `v` as an integer of `bits` bits; throws naming the range when it does not fit. */
function toInt(v: unknown, bits: number, signed: boolean, where: string): bigint {
  let n: bigint
  if (typeof v === 'bigint') n = v
  else if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v)
  else if (typeof v === 'boolean') n = v ? 1n : 0n
  else throw new BpfMapError(`${where}: expected an integer, got ${shown(v)}; pass a number or a bigint`)
  const lo = signed ? -(1n << BigInt(bits - 1)) : 0n
  const hi = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n
  if (n < lo || n > hi) throw new BpfMapError(`${where}: ${n} does not fit a ${signed ? 'signed' : 'unsigned'} ${bits}-bit integer (${lo} … ${hi})`)
  return BigInt.asUintN(bits, n)
}

/** Encode `value` as type `typeId` into `into` at bit `bitOff`. `where` names the place for errors (`scx_qmap.bss: nr_enqueued`). */
export function encodeValue(btf: Btf, typeId: number, value: unknown, into: Uint8Array, where: string, bitOff = 0, bitfield = 0, depth = 0): void {
  if (depth > MAX_DEPTH) throw new BtfError(`${where}: type nests deeper than ${MAX_DEPTH}`)
  const t = btf.type(typeId)
  if (!t) throw new BpfMapError(`${where}: cannot write a void value`)
  switch (t.kind) {
    case 'INT': {
      const bits = bitfield || t.bits
      if (t.encoding & INT_BOOL && typeof value !== 'boolean') throw new BpfMapError(`${where}: expected true or false, got ${shown(value)}`)
      return writeBits(into, bitOff + (bitfield ? 0 : t.bitsOffset), bits, toInt(value, bits, (t.encoding & INT_SIGNED) !== 0, where))
    }
    case 'ENUM':
    case 'ENUM64': {
      const named = typeof value === 'string' ? t.values.find((e) => e.name === value) : undefined
      if (typeof value === 'string' && !named) throw new BpfMapError(`${where}: ${what(t)} has no value ${value}; use one of ${t.values.map((e) => e.name).join(', ')}`)
      const bits = bitfield || t.size * 8
      return writeBits(into, bitOff, bits, toInt(named ? BigInt(named.value) : value, bits, t.signed, where))
    }
    case 'PTR':
      return writeBits(into, bitOff, 64, toInt(value, 64, false, where))
    case 'FLOAT': {
      if (typeof value !== 'number') throw new BpfMapError(`${where}: expected a number, got ${shown(value)}`)
      const dv = new DataView(into.buffer, into.byteOffset + bitOff / 8, t.size)
      if (t.size === 4) dv.setFloat32(0, value, true)
      else dv.setFloat64(0, value, true)
      return
    }
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
    case 'RESTRICT':
    case 'TYPE_TAG':
    case 'VAR':
      return encodeValue(btf, t.type, value, into, where, bitOff, bitfield, depth + 1)
    case 'ARRAY':
      return encodeArray(btf, t.type, t.nelems, value, into, where, bitOff, depth)
    case 'STRUCT':
    case 'UNION':
    case 'DATASEC': {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
        throw new BpfMapError(`${where}: expected an object for ${what(t)}, got ${shown(value)}`)
      for (const [k, v] of Object.entries(value)) {
        if (t.kind === 'DATASEC') {
          const s = t.vars.find((s) => btf.get(s.type).name === k)
          if (!s) throw new BpfMapError(`${where}: ${t.name} has no variable '${k}'; it has ${t.vars.map((s) => btf.get(s.type).name).join(', ')}`)
          encodeValue(btf, s.type, v, into, `${where}.${k}`, bitOff + s.offset * 8, 0, depth + 1)
          continue
        }
        let loc: ReturnType<Btf['member']>
        try {
          loc = btf.member(t.id, k)
        } catch {
          throw new BpfMapError(`${where}: ${what(t)} has no member '${k}'; it has ${memberNames(btf, t.id).join(', ')}`)
        }
        encodeValue(btf, loc.type, v, into, `${where}.${k}`, bitOff + loc.bitOffset, loc.bitfieldSize, depth + 1)
      }
      return
    }
    default:
      throw new BpfMapError(`${where}: cannot write a value of ${what(t)}`)
  }
}

function encodeArray(btf: Btf, elem: number, n: number, value: unknown, into: Uint8Array, where: string, bitOff: number, depth: number): void {
  const size = btf.sizeOf(elem)
  const e = btf.resolved(elem)
  if (typeof value === 'string' && e?.kind === 'INT' && size === 1 && (e.name === 'char' || e.encoding & INT_CHAR)) {
    const bytes = Buffer.from(value, 'utf8')
    if (bytes.length >= n) throw new BpfMapError(`${where}: "${value}" is ${bytes.length} bytes; char[${n}] holds at most ${n - 1} and the NUL`)
    into.fill(0, bitOff / 8, bitOff / 8 + n)
    into.set(bytes, bitOff / 8)
    return
  }
  if (!Array.isArray(value)) throw new BpfMapError(`${where}: expected an array of ${n}, got ${shown(value)}`)
  if (value.length > n) throw new BpfMapError(`${where}: ${value.length} elements given, the array holds ${n}`)
  value.forEach((v, i) => encodeValue(btf, elem, v, into, `${where}[${i}]`, bitOff + i * size * 8, 0, depth + 1))
}

/** Names of a struct's members (anonymous members' own members included). */
export function memberNames(btf: Btf, id: number): string[] {
  const t = btf.resolved(id)
  if (t?.kind !== 'STRUCT' && t?.kind !== 'UNION') return []
  return t.members.flatMap((m) => (m.name ? [m.name] : memberNames(btf, m.type)))
}
