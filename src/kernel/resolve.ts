import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { kernelsDir, listCachedKernels } from './cache.js'
import { type KernelConfig, readKernelConfig } from './config.js'
import { hasSchedExt } from './required.js'

export type KernelOrigin = 'option' | 'env' | 'cache'

export interface GuestKernel {
  bzImage: string
  /** The folder the kernel came from (holds bzImage, config and scx/ for a cache entry). */
  dir: string
  /** Folder of the example schedulers built with this kernel (`scx/`), when there is one. */
  schedulersDir?: string
  config: KernelConfig
  origin: KernelOrigin
  /** How to name this kernel to a user: a cache key or a path. */
  label: string
}

const ORIGIN_NAME: Record<KernelOrigin, string> = { option: '--kernel', env: 'KTSTR_KERNEL', cache: 'the kernel cache' }

/**
 * The guest kernel to boot: `explicit` (the `--kernel` option) → `KTSTR_KERNEL` → the newest build in
 * the cache. Both explicit forms accept a bzImage path, a folder holding `bzImage` (and optionally
 * `config` and `scx/`), a built kernel tree, or a cache key. The kernel must have sched_ext.
 */
export async function resolveKernel(explicit?: string): Promise<GuestKernel> {
  if (explicit) return kernelFromSpec(explicit, 'option')
  const env = process.env.KTSTR_KERNEL
  if (env) return kernelFromSpec(env, 'env')
  const cached = listCachedKernels()[0]
  if (cached) {
    log.debug(`kernel: newest cache entry ${cached.dir}`)
    return openKernel(cached.bzImage, cached.dir, 'cache', cached.key)
  }
  throw new KtstrError('no guest kernel found: pass --kernel <bzImage or dir>, set KTSTR_KERNEL, or build one with `ktstr kernel build`')
}

/** A kernel named by a path (relative to cwd) or a cache key. */
export function kernelFromSpec(spec: string, origin: KernelOrigin): GuestKernel {
  const abs = path.resolve(process.cwd(), spec)
  let stat: fs.Stats
  try {
    stat = fs.statSync(abs)
  } catch (e) {
    const keyDir = path.join(kernelsDir(), spec)
    if (!spec.includes('/') && fs.existsSync(path.join(keyDir, 'bzImage'))) return openKernel(path.join(keyDir, 'bzImage'), keyDir, origin, spec)
    const code = (e as NodeJS.ErrnoException).code
    throw new KtstrError(
      code === 'ENOENT'
        ? `kernel ${abs} (from ${ORIGIN_NAME[origin]}) does not exist; give a bzImage, a folder holding one, or build one with \`ktstr kernel build\``
        : `cannot access kernel ${abs} (from ${ORIGIN_NAME[origin]}): ${code}`,
    )
  }
  if (!stat.isDirectory()) return openKernel(abs, path.dirname(abs), origin, abs)
  const inDir = path.join(abs, 'bzImage')
  if (fs.existsSync(inDir)) return openKernel(inDir, abs, origin, abs)
  const inTree = path.join(abs, 'arch', 'x86', 'boot', 'bzImage')
  if (fs.existsSync(inTree)) return openKernel(inTree, abs, origin, abs, path.join(abs, 'tools', 'sched_ext', 'build', 'bin'))
  throw new KtstrError(`folder ${abs} (from ${ORIGIN_NAME[origin]}) holds no bzImage; give a bzImage path or a folder with bzImage in it`)
}

export function openKernel(bzImage: string, dir: string, origin: KernelOrigin, label: string, scx = path.join(dir, 'scx')): GuestKernel {
  try {
    fs.accessSync(bzImage, fs.constants.R_OK)
  } catch (e) {
    throw new KtstrError(`cannot read kernel image ${bzImage}: ${(e as NodeJS.ErrnoException).code}`)
  }
  const { config, source } = readKernelConfig(bzImage)
  if (!hasSchedExt(config)) throw new KtstrError(`kernel ${bzImage} has no CONFIG_SCHED_CLASS_EXT=y (config: ${source}); build one with \`ktstr kernel build\``)
  const kernel: GuestKernel = { bzImage, dir, config, origin, label }
  if (isDirectory(scx)) kernel.schedulersDir = scx
  log.debug(`kernel: ${bzImage} from ${ORIGIN_NAME[origin]}, config from ${source}`)
  return kernel
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}
