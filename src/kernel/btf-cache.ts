/**
 * The guest kernel's BTF blob, cached beside the kernel and keyed by the bzImage's sha256, so each
 * kernel is decompressed once (or at install, see precacheKernelBtf).
 */
import fs from 'node:fs'
import path from 'node:path'
import { writeFileAtomically } from '../util/durable.js'
import { fileSha256 } from '../util/file-hash.js'
import { log } from '../util/log.js'
import { cacheRoot } from '../util/paths.js'
import { btfFileName, extractBtf } from './btf-extract.js'
import { kernelsDir } from './cache.js'
import type { KernelConfig } from './config.js'

export interface KernelBtfFound {
  ok: true
  blob: Uint8Array
  /** The cache file, when it could be written. */
  file?: string
  fromCache: boolean
  /** sha256 of the bzImage, the cache key. */
  sha256: string
}

/** `reason` is one line saying why this kernel gives no BTF (the monitor is off with it). */
export type KernelBtf = KernelBtfFound | { ok: false; reason: string }

export interface KernelBtfSource {
  bzImage: string
  /** The kernel's folder: a cache entry keeps its BTF file inside. */
  dir: string
  config?: KernelConfig
}

/** Where the BTF of a bzImage with this sha256 is cached: in its cache entry, else under `<cache>/btf/`. */
export function btfCacheFile(kernel: KernelBtfSource, sha256: string): string {
  const entries = kernelsDir()
  const inCache = path.relative(entries, path.resolve(kernel.dir))
  const name = btfFileName(sha256)
  if (inCache && !inCache.startsWith('..') && !path.isAbsolute(inCache) && !inCache.includes(path.sep)) return path.join(entries, inCache, name)
  return path.join(cacheRoot(), 'btf', name)
}

/**
 * The kernel's BTF blob: from the cache when a sound file is there (unless `refresh`), else
 * extracted from the bzImage and written to the cache atomically (a temporary file renamed into
 * place, so concurrent processes each see a whole file or none).
 */
export function kernelBtf(kernel: KernelBtfSource, opts: { refresh?: boolean } = {}): KernelBtf {
  const btfOpt = kernel.config?.get('CONFIG_DEBUG_INFO_BTF')
  if (kernel.config && btfOpt !== 'y')
    return { ok: false, reason: `kernel ${kernel.bzImage} was built without CONFIG_DEBUG_INFO_BTF=y, so it has no BTF; build one with \`ktstr kernel build\`` }
  const unreadable = (e: unknown): KernelBtf => ({ ok: false, reason: `cannot read kernel ${kernel.bzImage}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` })
  let sha256: string
  try {
    sha256 = fileSha256(kernel.bzImage) // hashed once per process: the snapshot key hashes it too
  } catch (e) {
    return unreadable(e)
  }
  const file = btfCacheFile(kernel, sha256)
  if (!opts.refresh) {
    const cached = readCachedBtf(file)
    if (cached) return { ok: true, blob: cached, file, fromCache: true, sha256 }
  }
  let image: Buffer
  try {
    image = fs.readFileSync(kernel.bzImage)
  } catch (e) {
    return unreadable(e)
  }
  const r = extractBtf(image, kernel.bzImage)
  if (!r.ok) return r
  try {
    writeFileAtomically(file, r.blob)
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
