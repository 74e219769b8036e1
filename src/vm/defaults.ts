/**
 * Defaults for a guest when neither the user nor a file's docblock says otherwise, and the limits
 * every source of a value (CLI flag, plugin option, docblock, API) is checked against (by spec/parse.ts).
 */
import os from 'node:os'

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

/** The host's monitor of a guest (src/monitor): samples per second, and the stall watchdog's threshold. */
export const DEFAULT_MONITOR_HZ = 10
export const MAX_MONITOR_HZ = 1000
export const DEFAULT_STALL_MS = 2000
/** Below a few samples' time a stall cannot be told from a busy moment. */
export const MIN_STALL_MS = 100

/** The most memory a guest may have: the host's physical memory. */
export function maxMemoryMib(): number {
  return Math.floor(os.totalmem() / (1024 * 1024))
}
