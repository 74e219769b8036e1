import fs from 'node:fs'
import path from 'node:path'
import { cacheRoot } from '../util/paths.js'

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
