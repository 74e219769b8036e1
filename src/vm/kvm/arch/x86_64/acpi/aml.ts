/**
 * The few AML encodings our DSDT needs (ACPI 6.5 §20.2: AML grammar). Each returns bytes.
 */
const NAME_OP = 0x08
const PACKAGE_OP = 0x12
const ZERO_OP = 0x00
const ONE_OP = 0x01
const ONES_OP = 0xff
const BYTE_PREFIX = 0x0a
const WORD_PREFIX = 0x0b
const DWORD_PREFIX = 0x0c
const QWORD_PREFIX = 0x0e

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** A NameSeg: 4 characters, a lead of A-Z or _, padded with '_' (§20.2.2). */
export function nameSeg(name: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(name)) throw new RangeError(`"${name}" is not an ACPI NameSeg`)
  return new TextEncoder().encode(name.padEnd(4, '_'))
}

/** PkgLength (§20.2.4): the encoded length counts its own bytes. */
export function pkgLength(contentLength: number): Uint8Array {
  if (contentLength + 1 < 0x40) return Uint8Array.of(contentLength + 1)
  for (let extra = 1; extra <= 3; extra++) {
    const total = contentLength + 1 + extra
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra)
      out[0] = (extra << 6) | (total & 0x0f)
      for (let i = 0; i < extra; i++) out[1 + i] = (total >>> (4 + 8 * i)) & 0xff
      return out
    }
  }
  throw new RangeError(`AML package of ${contentLength} bytes is too long`)
}

/** The shortest integer encoding (§20.2.3 ComputationalData / ConstObj). */
export function integer(v: number | bigint): Uint8Array {
  const n = BigInt(v)
  if (n === 0n) return Uint8Array.of(ZERO_OP)
  if (n === 1n) return Uint8Array.of(ONE_OP)
  if (n === 0xffff_ffff_ffff_ffffn) return Uint8Array.of(ONES_OP)
  const le = (prefix: number, bytes: number) => {
    const out = new Uint8Array(1 + bytes)
    out[0] = prefix
    for (let i = 0; i < bytes; i++) out[1 + i] = Number((n >> BigInt(8 * i)) & 0xffn)
    return out
  }
  if (n < 0n || n > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${v} does not fit an AML integer`)
  if (n <= 0xffn) return le(BYTE_PREFIX, 1)
  if (n <= 0xffffn) return le(WORD_PREFIX, 2)
  if (n <= 0xffff_ffffn) return le(DWORD_PREFIX, 4)
  return le(QWORD_PREFIX, 8)
}

/** DefPackage (§20.2.5.4) of already-encoded elements. */
export function packageOf(elements: readonly Uint8Array[]): Uint8Array {
  if (elements.length > 255) throw new RangeError('an AML Package holds at most 255 elements')
  const body = concat([Uint8Array.of(elements.length), ...elements])
  return concat([Uint8Array.of(PACKAGE_OP), pkgLength(body.length), body])
}

/** DefName (§20.2.5.1): Name (seg, object). */
export function name(seg: string, object: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(NAME_OP), nameSeg(seg), object])
}
