import fs from 'node:fs'
import path from 'node:path'
import { fsyncTree, renameDurably } from '../util/durable.js'
import { FileLock } from '../util/file-lock.js'
import { cacheRoot } from '../util/paths.js'
import { precacheKernelBtf } from './btf-extract.js'

/** `meta.json` of a cached kernel build. */
export interface KernelMeta {
  key: string
  /** Kernel version from the tree's Makefile, e.g. `6.12.117`. */
  version: string
  /** What was built: `debian:linux-source-6.12=<package version>` or `local:<path>[@<git rev>]`. */
  source: string
  /** ISO 8601 time the build finished. */
  createdAt: string
  /** sha256 of the kconfig fragment that was applied. */
  fragmentHash: string
  schedulers: string[]
  /** Size of bzImage when installed; an entry whose bzImage differs is incomplete (older entries lack it). */
  bzImageBytes?: number
}

export interface CachedKernel {
  key: string
  dir: string
  bzImage: string
  meta: KernelMeta
}

export function kernelsDir(): string {
  return path.join(cacheRoot(), 'kernels')
}

/** One cache entry, or undefined when `dir` is not a complete entry (no bzImage or unreadable meta.json). */
export function readCachedKernel(dir: string): CachedKernel | undefined {
  const bzImage = path.join(dir, 'bzImage')
  if (!fs.existsSync(bzImage)) return undefined
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as KernelMeta
    if (typeof meta.createdAt !== 'string' || typeof meta.version !== 'string') return undefined
    if (meta.bzImageBytes !== undefined && fs.statSync(bzImage).size !== meta.bzImageBytes) return undefined
    return { key: path.basename(dir), dir, bzImage, meta }
  } catch {
    return undefined
  }
}

/** Complete cache entries, newest first. Names starting with `.` are builds in progress. */
export function listCachedKernels(root: string = kernelsDir()): CachedKernel[] {
  let names: string[]
  try {
    names = fs.readdirSync(root)
  } catch {
    return []
  }
  return names
    .filter((n) => !n.startsWith('.'))
    .map((n) => readCachedKernel(path.join(root, n)))
    .filter((k): k is CachedKernel => k !== undefined)
    .sort((a, b) => Date.parse(b.meta.createdAt) - Date.parse(a.meta.createdAt) || a.key.localeCompare(b.key))
}

/**
 * The lock for writing the entry (and the build folder) of `key`: one build or import per key at a
 * time. `onWait` hears once that another process holds it.
 */
export function lockKernelKey(key: string, onWait?: (holderPid: number | undefined) => void): Promise<FileLock> {
  return FileLock.acquire(keyLockPath(key), 'exclusive', onWait ? { onWait } : {})
}

/** The key's lock if no other process holds it now. */
export function tryLockKernelKey(key: string): FileLock | undefined {
  return FileLock.tryAcquire(keyLockPath(key), 'exclusive')
}

/** Beside the key's build folder, which it guards too (`<cache>/build/<key>.lock`). */
export function keyLockPath(key: string): string {
  const dir = path.join(cacheRoot(), 'build')
  fs.mkdirSync(dir, { recursive: true })
  return path.join(dir, `${key}.lock`)
}

/**
 * Publishes the entry `finalDir` crash-safely (hold its key's lock): `fill` writes bzImage, config
 * and scx/ into a temporary folder beside it, where the kernel's BTF is extracted too; meta.json, with the bzImage size that readCachedKernel
 * checks, is written last; everything is synced before the folder is renamed into place, replacing
 * an older entry.
 */
export function installKernelEntry(finalDir: string, fill: (dir: string) => void, meta: KernelMeta): void {
  const parent = path.dirname(finalDir)
  const tmp = path.join(parent, `.tmp-${path.basename(finalDir)}-${process.pid}`)
  const old = path.join(parent, `.old-${path.basename(finalDir)}-${process.pid}`)
  fs.rmSync(tmp, { recursive: true, force: true })
  fs.mkdirSync(tmp, { recursive: true })
  try {
    fill(tmp)
    precacheKernelBtf(tmp)
    const bzImageBytes = fs.statSync(path.join(tmp, 'bzImage')).size
    fs.writeFileSync(path.join(tmp, 'meta.json'), `${JSON.stringify({ ...meta, bzImageBytes }, null, 2)}\n`)
    fsyncTree(tmp)
    if (fs.existsSync(finalDir)) fs.renameSync(finalDir, old)
    renameDurably(tmp, finalDir)
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
    fs.rmSync(old, { recursive: true, force: true })
  }
}
