/**
 * The guest kernel's BTF, read on the host without booting it: the bzImage's compressed payload
 * (located through the x86 setup header) is the stripped vmlinux ELF, whose `.BTF` section is the
 * blob `/sys/kernel/btf/vmlinux` serves in the guest. btf-cache.ts keeps it beside the kernel.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { writeFileAtomically } from '../util/durable.js'
import { log } from '../util/log.js'
import { bzImagePayload, decompressPayload, IkconfigError } from './ikconfig.js'

export type BtfExtract = { ok: true; blob: Uint8Array } | { ok: false; reason: string }

/** `.BTF` of a bzImage, or why there is none. */
export function extractBtf(image: Uint8Array, label: string): BtfExtract {
  let vmlinux: Uint8Array
  try {
    vmlinux = decompressPayload(bzImagePayload(image))
  } catch (e) {
    if (e instanceof IkconfigError) return { ok: false, reason: `cannot read BTF from kernel ${label}: ${e.message}` }
    return { ok: false, reason: `cannot read BTF from kernel ${label}: its payload does not decompress (${(e as Error).message})` }
  }
  try {
    const btf = elfSection(vmlinux, '.BTF')
    if (!btf) return { ok: false, reason: `kernel ${label} has no .BTF section; build it with CONFIG_DEBUG_INFO_BTF=y (ktstr kernel build does)` }
    return { ok: true, blob: btf }
  } catch (e) {
    return { ok: false, reason: `cannot read BTF from kernel ${label}: ${(e as Error).message}` }
  }
}

/** The bytes of section `name` of a little-endian ELF64 image in memory; undefined when it has none. */
export function elfSection(elf: Uint8Array, name: string): Uint8Array | undefined {
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength)
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error('the payload is not an ELF file')
  if (b[4] !== 2 || b[5] !== 1) throw new Error('the payload is not a little-endian ELF64 file')
  const shoff = Number(b.readBigUInt64LE(0x28))
  const shentsize = b.readUInt16LE(0x3a)
  const shnum = b.readUInt16LE(0x3c)
  const shstrndx = b.readUInt16LE(0x3e)
  if (shnum === 0) return undefined
  if (shentsize < 64 || shoff + shnum * shentsize > b.length || shstrndx >= shnum) throw new Error('the ELF section headers are truncated or malformed')
  const sh = (i: number) => {
    const o = shoff + i * shentsize
    return { name: b.readUInt32LE(o), type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 24)), size: Number(b.readBigUInt64LE(o + 32)) }
  }
  const names = sh(shstrndx)
  if (names.offset + names.size > b.length) throw new Error('the ELF section name table is past the end of the file')
  const want = Buffer.from(`${name}\0`, 'latin1')
  for (let i = 1; i < shnum; i++) {
    const s = sh(i)
    if (s.name >= names.size || !b.subarray(names.offset + s.name, names.offset + s.name + want.length).equals(want)) continue
    if (s.type === 8) return undefined // SHT_NOBITS: no bytes in the file
    if (s.offset + s.size > b.length) throw new Error(`ELF section ${name} is past the end of the file`)
    return elf.subarray(s.offset, s.offset + s.size)
  }
  return undefined
}

/** The cache file name of the BTF of a bzImage with this sha256. */
export function btfFileName(sha256: string): string {
  return `vmlinux-${sha256.slice(0, 16)}.btf`
}

/**
 * Extracts the BTF of `dir/bzImage` into `dir` (a cache entry being installed), so the first
 * monitored run does not pay for the decompression. Best effort: a kernel without BTF gets none.
 */
export function precacheKernelBtf(dir: string): void {
  try {
    const image = fs.readFileSync(path.join(dir, 'bzImage'))
    const r = extractBtf(image, path.join(dir, 'bzImage'))
    if (!r.ok) return log.debug(`kernel BTF: ${r.reason}`)
    writeFileAtomically(path.join(dir, btfFileName(createHash('sha256').update(image).digest('hex'))), r.blob)
  } catch (e) {
    log.debug(`kernel BTF: not cached at install: ${(e as Error).message}`)
  }
}
