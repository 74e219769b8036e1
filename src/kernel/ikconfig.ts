import zlib from 'node:zlib'
import { decompress as zstdDecompress } from 'fzstd'

/** Why the embedded config could not be read; the caller turns it into a user-facing message. */
export class IkconfigError extends Error {}

// Linux x86 boot protocol (Documentation/arch/x86/boot.rst): offsets into the setup header.
const SETUP_SECTS = 0x1f1
const HEADER_MAGIC = 0x202 // "HdrS"
const BOOT_VERSION = 0x206
const PAYLOAD_OFFSET = 0x248 // relative to the start of the protected-mode code (protocol >= 2.08)
const PAYLOAD_LENGTH = 0x24c

/** The compressed vmlinux inside a bzImage, located through its setup header. */
export function bzImagePayload(image: Uint8Array): Uint8Array {
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength)
  if (buf.length < 0x250 || buf.toString('latin1', HEADER_MAGIC, HEADER_MAGIC + 4) !== 'HdrS') throw new IkconfigError('not a bzImage (no "HdrS" boot header)')
  if (buf.readUInt16LE(BOOT_VERSION) < 0x208) throw new IkconfigError('boot protocol older than 2.08 has no payload fields')
  const setupSects = buf[SETUP_SECTS] || 4 // 0 means 4 for historical reasons
  const start = (setupSects + 1) * 512 + buf.readUInt32LE(PAYLOAD_OFFSET)
  const end = start + buf.readUInt32LE(PAYLOAD_LENGTH)
  if (end > buf.length) throw new IkconfigError('payload extends past the end of the file')
  return buf.subarray(start, end)
}

export type PayloadCompression = 'gzip' | 'zstd' | 'xz' | 'lzma' | 'bzip2' | 'lz4' | 'lzo' | 'unknown'

export function payloadCompression(p: Uint8Array): PayloadCompression {
  const b = (i: number) => p[i] ?? -1
  if (b(0) === 0x1f && (b(1) === 0x8b || b(1) === 0x9e)) return 'gzip'
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return 'zstd'
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58) return 'xz'
  if (b(0) === 0x5d && b(1) === 0x00 && b(2) === 0x00) return 'lzma'
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return 'bzip2'
  if (b(0) === 0x02 && b(1) === 0x21 && b(2) === 0x4c && b(3) === 0x18) return 'lz4'
  if (b(0) === 0x89 && b(1) === 0x4c && b(2) === 0x5a && b(3) === 0x4f) return 'lzo'
  return 'unknown'
}

/** Decompress the payload to the vmlinux ELF. Only gzip and zstd are supported (node:zlib, fzstd). */
export function decompressPayload(p: Uint8Array): Uint8Array {
  const kind = payloadCompression(p)
  if (kind === 'gzip') return zlib.gunzipSync(p)
  if (kind === 'zstd') {
    // The kernel appends the decompressed size as a 4-byte LE trailer after the zstd frame
    // (scripts/Makefile.lib, cmd_zstd22_with_size); it is not part of the frame.
    const body = p.subarray(0, p.length - 4)
    const size = Buffer.from(p.buffer, p.byteOffset + p.length - 4, 4).readUInt32LE(0)
    try {
      return zstdDecompress(body, new Uint8Array(size))
    } catch {
      return zstdDecompress(p) // no size trailer: the frame is the whole payload
    }
  }
  throw new IkconfigError(`payload is ${kind}-compressed; only gzip and zstd can be read`)
}

/** Find the IKCONFIG blob (kernel/configs.c: "IKCFG_ST" gzip-data "IKCFG_ED") and gunzip it. */
export function ikconfigFromVmlinux(vmlinux: Uint8Array): string {
  const buf = Buffer.from(vmlinux.buffer, vmlinux.byteOffset, vmlinux.byteLength)
  const st = buf.indexOf('IKCFG_ST')
  if (st < 0) throw new IkconfigError('no embedded config (CONFIG_IKCONFIG is not set)')
  const ed = buf.indexOf('IKCFG_ED', st + 8)
  return zlib.gunzipSync(buf.subarray(st + 8, ed < 0 ? undefined : ed)).toString('utf8')
}

/** The .config text embedded in a bzImage with CONFIG_IKCONFIG=y. */
export function ikconfigFromBzImage(image: Uint8Array): string {
  return ikconfigFromVmlinux(decompressPayload(bzImagePayload(image)))
}
