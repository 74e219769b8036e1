import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { isExecutable } from '../util/which.js'
import type { GuestKernel } from './resolve.js'

export interface ResolvedScheduler {
  /** Host path of the scheduler binary. */
  path: string
  name: string
  /** What `/sys/kernel/sched_ext/root/ops` shows once it is attached, when known (scx_simple → simple). */
  opsName?: string
}

/** Executables in the kernel's scheduler folder (`scx/`), sorted. */
export function listSchedulers(kernel: GuestKernel): string[] {
  const dir = kernel.schedulersDir
  if (!dir) return []
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  return names.filter((n) => isExecutable(path.join(dir, n))).sort()
}

/**
 * A scheduler by name (an executable in the kernel's `scx/`, e.g. `scx_simple`) or by host path
 * (anything containing `/`, relative to cwd).
 */
export function resolveScheduler(kernel: GuestKernel, nameOrPath: string): ResolvedScheduler {
  if (nameOrPath.includes('/')) {
    const abs = path.resolve(process.cwd(), nameOrPath)
    if (!fs.existsSync(abs)) throw new KtstrError(`scheduler ${abs} does not exist`)
    if (!isExecutable(abs)) throw new KtstrError(`scheduler ${abs} is not an executable file; check the path or chmod +x it`)
    return { path: abs, name: path.basename(abs) }
  }
  const names = listSchedulers(kernel)
  if (names.includes(nameOrPath)) {
    return { path: path.join(kernel.schedulersDir!, nameOrPath), name: nameOrPath, opsName: nameOrPath.replace(/^scx_/, '') }
  }
  const have = names.length ? `kernel ${kernel.label} has ${names.join(', ')}` : `kernel ${kernel.label} comes with no schedulers (no scx/ folder beside its bzImage)`
  throw new KtstrError(`unknown scheduler "${nameOrPath}": ${have}; a path to a scheduler binary (containing /) works too`)
}
