/**
 * Defaults for a guest when neither the user nor a file's docblock says otherwise, and the limits
 * every source of a value (CLI flag, plugin option, docblock, API) is checked against.
 */
import os from 'node:os'
import { KtstrError } from '../util/errors.js'

export const DEFAULT_TOPOLOGY = '1n1l2c1t'
export const DEFAULT_MEMORY_MIB = 1024
/**
 * Below this the kernel cannot unpack the ~100 MB initramfs (node + runtime): it holds the archive
 * and its unpacked copy at once (256 MiB fails with "Initramfs unpacking failed: write error").
 */
export const MIN_MEMORY_MIB = 320
export const DEFAULT_TIMEOUT_S = 300
/** Node's timers hold at most 2^31-1 ms; a longer delay fires at once. */
export const MAX_TIMEOUT_S = Math.floor(0x7fffffff / 1000)
/** From guest init start to the scheduler showing up in sched_ext sysfs (TCG is slow). */
export const SCHEDULER_ATTACH_TIMEOUT_MS = 20_000
/** How long a guest gets to power off after being asked to. */
export const STOP_GRACE_MS = 10_000

/** The most memory a guest may have: the host's physical memory. */
export function maxMemoryMib(): number {
  return Math.floor(os.totalmem() / (1024 * 1024))
}

/**
 * Each check throws a one-line KtstrError, `bad <where>: <what is accepted>`, with the same words
 * whichever source the value came from; `where` names the source, e.g. `--memory "9"`.
 */
export function checkMemoryMib(mib: number, where: string): void {
  const max = maxMemoryMib()
  if (!Number.isInteger(mib) || mib < MIN_MEMORY_MIB || mib > max) {
    throw new KtstrError(`bad ${where}: expected a whole number of MiB from ${MIN_MEMORY_MIB} to ${max} (this host's memory)`)
  }
}

export function checkTimeoutS(s: number, where: string): void {
  if (!(s > 0 && s <= MAX_TIMEOUT_S)) {
    throw new KtstrError(`bad ${where}: expected a number of seconds above 0 and at most ${MAX_TIMEOUT_S} (about 24 days, the limit of Node's timers)`)
  }
}

/** Memory as text (MiB, digits only). */
export function parseMemoryMib(text: string, where: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  checkMemoryMib(n, where)
  return n
}

/** A timeout as text (seconds, digits with an optional fraction). */
export function parseTimeoutS(text: string, where: string): number {
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN
  checkTimeoutS(n, where)
  return n
}
