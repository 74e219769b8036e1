/**
 * The guest kernel's BTF, read on the host without booting it: the bzImage's compressed payload
 * (located through the x86 setup header) is the stripped vmlinux ELF, whose `.BTF` section is the
 * blob `/sys/kernel/btf/vmlinux` serves in the guest. Cached beside the kernel, keyed by the
 * bzImage's sha256, so each kernel is decompressed once.
 */
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fsyncPath, renameDurably } from '../util/durable.js'
import { log } from '../util/log.js'
import { cacheRoot } from '../util/paths.js'
import { kernelsDir } from './cache.js'
import type { KernelConfig } from './config.js'
import { bzImagePayload, decompressPayload, IkconfigError } from './ikconfig.js'

export type KernelBtf =
  | { ok: true; blob: Uint8Array /** The cache file, when it could be written. */; file?: string; fromCache: boolean; sha256: string }
  | { ok: false /** One line: why this kernel gives no BTF. */; reason: string }

export interface KernelBtfSource {
  bzImage: string
  /** The kernel's folder: a cache entry keeps its BTF file inside. */
  dir: string
  config?: KernelConfig
}

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

/** Where the BTF of a bzImage with this sha256 is cached: in its cache entry, else under `<cache>/btf/`. */
export function btfCacheFile(kernel: KernelBtfSource, sha256: string): string {
  const entries = kernelsDir()
  const inCache = path.relative(entries, path.resolve(kernel.dir))
  const name = `vmlinux-${sha256.slice(0, 16)}.btf`
  if (inCache && !inCache.startsWith('..') && !path.isAbsolute(inCache) && !inCache.includes(path.sep)) return path.join(entries, inCache, name)
  return path.join(cacheRoot(), 'btf', name)
}

/**
 * The kernel's BTF blob: from the cache when a sound file is there (or `refresh` is false), else
 * extracted from the bzImage and written to the cache atomically (a temporary file renamed into
 * place, so concurrent processes each see a whole file or none).
 */
export function kernelBtf(kernel: KernelBtfSource, opts: { refresh?: boolean } = {}): KernelBtf {
  const btfOpt = kernel.config?.get('CONFIG_DEBUG_INFO_BTF')
  if (kernel.config && btfOpt !== 'y')
    return { ok: false, reason: `kernel ${kernel.bzImage} was built without CONFIG_DEBUG_INFO_BTF=y, so it has no BTF; build one with \`ktstr kernel build\`` }
  let image: Buffer
  try {
    image = fs.readFileSync(kernel.bzImage)
  } catch (e) {
    return { ok: false, reason: `cannot read kernel ${kernel.bzImage}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }
  }
  const sha256 = createHash('sha256').update(image).digest('hex')
  const file = btfCacheFile(kernel, sha256)
  if (!opts.refresh) {
    const cached = readCachedBtf(file)
    if (cached) return { ok: true, blob: cached, file, fromCache: true, sha256 }
  }
  const r = extractBtf(image, kernel.bzImage)
  if (!r.ok) return r
  try {
    writeAtomically(file, r.blob)
    log.debug(`kernel BTF: ${r.blob.length} bytes extracted from ${kernel.bzImage} into ${file}`)
    return { ok: true, blob: r.blob, file, fromCache: false, sha256 }
  } catch (e) {
    log.debug(`kernel BTF: cannot cache it in ${file}: ${(e as Error).message}`)
    return { ok: true, blob: r.blob, fromCache: false, sha256 }
  }
}

/** A cached blob whose header agrees with its length (a cut-off or foreign file is extracted again). */
function readCachedBtf(file: string): Uint8Array | undefined {
  let b: Buffer
  try {
    b = fs.readFileSync(file)
  } catch {
    return undefined
  }
  if (b.length >= 24 && b.readUInt16LE(0) === 0xeb9f) {
    const hdr = b.readUInt32LE(4)
    const end = hdr + Math.max(b.readUInt32LE(8) + b.readUInt32LE(12), b.readUInt32LE(16) + b.readUInt32LE(20))
    if (end === b.length) return b
  }
  log.debug(`kernel BTF: cached ${file} is damaged; extracting it again`)
  return undefined
}

function writeAtomically(file: string, data: Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    fs.writeFileSync(tmp, data)
    fsyncPath(tmp)
    renameDurably(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
}
