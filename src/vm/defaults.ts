/** Defaults for a guest when neither the user nor a file's docblock says otherwise. */
export const DEFAULT_TOPOLOGY = '1n1l2c1t'
export const DEFAULT_MEMORY_MIB = 1024
/** Below this the ~100 MB initramfs (node + runtime) plus node's heap do not fit. */
export const MIN_MEMORY_MIB = 256
export const DEFAULT_TIMEOUT_S = 300
/** From guest init start to the scheduler showing up in sched_ext sysfs (TCG is slow). */
export const SCHEDULER_ATTACH_TIMEOUT_MS = 20_000
/** How long a guest gets to power off after being asked to. */
export const STOP_GRACE_MS = 10_000
