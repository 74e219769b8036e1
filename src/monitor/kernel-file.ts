/** Where the monitor keeps what it learnt of one kernel (its layout, its per-CPU areas) in the cache. */
import path from 'node:path'
import type { KernelBtfSource } from '../kernel/btf-cache.js'
import { fileSha256 } from '../util/file-hash.js'
import { cacheRoot } from '../util/paths.js'

/**
 * `<cache>/<folder>/<kernel>-<suffix>.json`, the kernel named by content as the BTF cache names it;
 * undefined when the kernel cannot be read (then there is nothing to keep).
 */
export function kernelCacheFile(kernel: KernelBtfSource, folder: string, suffix: string): string | undefined {
  try {
    return path.join(cacheRoot(), folder, `${fileSha256(kernel.bzImage).slice(0, 16)}-${suffix}.json`)
  } catch {
    return undefined
  }
}
