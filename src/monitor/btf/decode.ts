/**
 * Bytes + a BTF type id → a plain JS value: integers as numbers (bigint beyond 2^53), bools,
 * enums by name where known, char arrays as strings, arrays, structs/unions as objects (members
 * of anonymous ones merged in, as C reads them), pointers as bigint. Works on any BTF: vmlinux's
 * for kernel memory, a map's for BPF map values (a DATASEC decodes to its variables).
 */
import { type Btf, MAX_CHAIN } from './btf.js'
import { BtfError } from './errors.js'
import { type BtfType, INT_BOOL, INT_CHAR, INT_SIGNED } from './types.js'

export type BtfValue = number | bigint | boolean | string | BtfValue[] | { [member: string]: BtfValue }

export interface DecodeOptions {
  /** Stop with an error past this many decoded values (guards huge or zero-sized arrays). Default 1,000,000. */
  maxValues?: number
}

export function decodeValue(btf: Btf, typeId: number, bytes: Uint8Array, opts: DecodeOptions = {}): BtfValue {
  const d = new Decoder(btf, bytes, opts.maxValues ?? 1_000_000)
  const size = btf.sizeOf(typeId)
  if (size > bytes.length) throw new BtfError(`${describe(btf.get(typeId))} is ${size} bytes, only ${bytes.length} given`)
  return d.value(typeId, 0, 0, 0)
}

function describe(t: BtfType): string {
  return `${t.kind.toLowerCase()} ${t.name || '(anon)'} [${t.id}]`
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER)

function toNumber(v: bigint): number | bigint {
  return v > SAFE || v < -SAFE ? v : Number(v)
}

class Decoder {
  private count = 0
  constructor(
    private readonly btf: Btf,
    private readonly bytes: Uint8Array,
    private readonly maxValues: number,
  ) {}

  /** Little-endian `nbits` at bit `bitOff`, as unsigned or two's-complement signed. */
  private bits(bitOff: number, nbits: number, signed: boolean): bigint {
    if (nbits === 0) return 0n
    const end = bitOff + nbits
    if (end > this.bytes.length * 8) throw new BtfError(`value needs bits ${bitOff}..${end}, only ${this.bytes.length} bytes given`)
    let v = 0n
    for (let i = Math.floor((end - 1) / 8); i >= Math.floor(bitOff / 8); i--) v = (v << 8n) | BigInt(this.bytes[i]!)
    v = (v >> BigInt(bitOff % 8)) & ((1n << BigInt(nbits)) - 1n)
    return signed ? BigInt.asIntN(nbits, v) : v
  }

  value(id: number, bitOff: number, bitfield: number, depth: number): BtfValue {
    if (++this.count > this.maxValues) throw new BtfError(`value has more than ${this.maxValues} parts; decode a smaller type`)
    if (depth > MAX_CHAIN) throw new BtfError(`BTF type [${id}] nests deeper than ${MAX_CHAIN} (a cycle?)`)
    const t = this.btf.type(id)
    if (!t) throw new BtfError('cannot decode a value of type void')
    switch (t.kind) {
      case 'INT': {
        const raw = this.bits(bitOff + (bitfield ? 0 : t.bitsOffset), bitfield || t.bits, (t.encoding & INT_SIGNED) !== 0)
        return t.encoding & INT_BOOL ? raw !== 0n : toNumber(raw)
      }
      case 'ENUM':
      case 'ENUM64': {
        const raw = this.bits(bitOff, bitfield || t.size * 8, t.signed)
        const hit = t.values.find((e) => BigInt(e.value) === raw)
        return hit ? hit.name : toNumber(raw)
      }
      case 'PTR':
        return this.bits(bitOff, 64, false)
      case 'FLOAT': {
        if (bitOff % 8 !== 0 || (t.size !== 4 && t.size !== 8)) throw new BtfError(`cannot decode a ${t.size}-byte float`)
        const at = bitOff / 8
        if (at + t.size > this.bytes.length) throw new BtfError(`value needs bytes ${at}..${at + t.size}, only ${this.bytes.length} given`)
        const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + at, t.size)
        return t.size === 4 ? v.getFloat32(0, true) : v.getFloat64(0, true)
      }
      case 'TYPEDEF':
      case 'CONST':
      case 'VOLATILE':
      case 'RESTRICT':
      case 'TYPE_TAG':
      case 'VAR':
        return this.value(t.type, bitOff, bitfield, depth + 1)
      case 'ARRAY':
        return this.array(t.type, t.nelems, bitOff, depth)
      case 'STRUCT':
      case 'UNION': {
        const out: { [member: string]: BtfValue } = {}
        for (const m of t.members) {
          const inner = this.btf.resolved(m.type)
          const v = m.name || inner?.kind === 'STRUCT' || inner?.kind === 'UNION' ? this.value(m.type, bitOff + m.bitsOffset, m.bitfieldSize, depth + 1) : undefined
          if (m.name) out[m.name] = v!
          else if (v !== undefined) Object.assign(out, v) // anonymous struct/union: its members read as the outer's
        }
        return out
      }
      case 'DATASEC': {
        const out: { [variable: string]: BtfValue } = {}
        for (const s of t.vars) {
          const v = this.btf.get(s.type)
          out[v.name || `@${s.offset}`] = this.value(s.type, bitOff + s.offset * 8, 0, depth + 1)
        }
        return out
      }
      default:
        throw new BtfError(`cannot decode a value of ${describe(t)}`)
    }
  }

  private array(elem: number, n: number, bitOff: number, depth: number): BtfValue {
    const size = this.btf.sizeOf(elem)
    const at = bitOff / 8
    if (at + size * n > this.bytes.length) throw new BtfError(`array of ${n} × ${size} bytes at byte ${at} is past the ${this.bytes.length} bytes given`)
    const e = this.btf.resolved(elem)
    if (e?.kind === 'INT' && e.size === 1 && (e.name === 'char' || e.encoding & INT_CHAR) && bitOff % 8 === 0) {
      const s = this.bytes.subarray(at, at + n)
      const nul = s.indexOf(0)
      return new TextDecoder().decode(nul < 0 ? s : s.subarray(0, nul))
    }
    if (n > this.maxValues - this.count) throw new BtfError(`array of ${n} elements has more than ${this.maxValues} parts; decode a smaller type`)
    const out: BtfValue[] = []
    for (let i = 0; i < n; i++) out.push(this.value(elem, bitOff + i * size * 8, 0, depth + 1))
    return out
  }
}
