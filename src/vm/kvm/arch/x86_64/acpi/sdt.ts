/**
 * ACPI table plumbing: a little-endian byte writer, the 36-byte System Description Table header
 * (ACPI 6.5 §5.2.6), checksums (all bytes of a table sum to 0 mod 256, §5.2.6 "Checksum") and the
 * Generic Address Structure (§5.2.3.2).
 */
export const OEM_ID = 'KTSTR ' // 6 chars
export const OEM_TABLE_ID = 'KTSTRVMM' // 8 chars
export const OEM_REVISION = 1
export const CREATOR_ID = 'KTST'
export const CREATOR_REVISION = 1
export const SDT_HEADER_SIZE = 36
/** Offset of the checksum byte in an SDT header. */
export const SDT_CHECKSUM = 9

export class ByteWriter {
  private buf = new Uint8Array(256)
  private dv = new DataView(this.buf.buffer)
  private len = 0

  get length(): number {
    return this.len
  }

  /** Reserves n bytes and returns their offset; call before touching buf/dv (it may replace them). */
  private room(n: number): number {
    const at = this.len
    if (at + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, at + n))
      bigger.set(this.buf)
      this.buf = bigger
      this.dv = new DataView(bigger.buffer)
    }
    this.len += n
    return at
  }

  u8(v: number): this {
    const at = this.room(1)
    this.dv.setUint8(at, v)
    return this
  }
  u16(v: number): this {
    const at = this.room(2)
    this.dv.setUint16(at, v, true)
    return this
  }
  u32(v: number): this {
    const at = this.room(4)
    this.dv.setUint32(at, v >>> 0, true)
    return this
  }
  u64(v: number | bigint): this {
    const at = this.room(8)
    this.dv.setBigUint64(at, BigInt(v), true)
    return this
  }
  /** ASCII, NUL-padded to `width` bytes (a longer string is an error). */
  ascii(s: string, width = s.length): this {
    if (s.length > width) throw new RangeError(`"${s}" is longer than ${width} bytes`)
    const at = this.room(width)
    for (let i = 0; i < s.length; i++) this.buf[at + i] = s.charCodeAt(i) & 0x7f
    return this
  }
  bytes(b: Uint8Array): this {
    const at = this.room(b.length)
    this.buf.set(b, at)
    return this
  }
  zeros(n: number): this {
    this.room(n) // the buffer is zero-filled and only ever grows
    return this
  }
  setU32(at: number, v: number): void {
    this.dv.setUint32(at, v >>> 0, true)
  }
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

/** Sum of bytes mod 256: 0 for a table with a correct checksum. */
export function byteSum(b: Uint8Array, start = 0, end = b.length): number {
  let s = 0
  for (let i = start; i < end; i++) s = (s + b[i]!) & 0xff
  return s
}

/** Sets b[at] so that bytes [start, end) sum to 0. */
export function fixChecksum(b: Uint8Array, at: number, start = 0, end = b.length): void {
  b[at] = 0
  b[at] = (0x100 - byteSum(b, start, end)) & 0xff
}

/** A complete SDT: header (length and checksum filled in) followed by `body`. */
export function sdt(signature: string, revision: number, body: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter()
  w.ascii(signature, 4).u32(0).u8(revision).u8(0)
  w.ascii(OEM_ID, 6).ascii(OEM_TABLE_ID, 8).u32(OEM_REVISION).ascii(CREATOR_ID, 4).u32(CREATOR_REVISION)
  body(w)
  w.setU32(4, w.length)
  const out = w.toBytes()
  fixChecksum(out, SDT_CHECKSUM)
  return out
}

export const ADDRESS_SPACE = { SYSTEM_MEMORY: 0, SYSTEM_IO: 1 } as const
/** GAS access size: 0 undefined (legacy), 1 byte, 2 word, 3 dword, 4 qword. */
export const ACCESS_SIZE = { UNDEFINED: 0, BYTE: 1, WORD: 2, DWORD: 3, QWORD: 4 } as const

export interface GenericAddress {
  space: number
  bitWidth: number
  bitOffset?: number
  accessSize?: number
  address: number
}

export const NULL_GAS: GenericAddress = { space: 0, bitWidth: 0, address: 0 }

/** Generic Address Structure, 12 bytes. */
export function writeGas(w: ByteWriter, g: GenericAddress): void {
  w.u8(g.space)
    .u8(g.bitWidth)
    .u8(g.bitOffset ?? 0)
    .u8(g.accessSize ?? 0)
    .u64(g.address)
}
