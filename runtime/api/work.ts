/**
 * Work types: what each workload process does (runtime/workloads/ktstr-workload.c runs them). Modelled on
 * ktstr's WorkType; every constructor also takes the workload's scheduling policy, RT priority and nice.
 */
import { KtstrError } from '../protocol/errors.js'

export type Policy = 'other' | 'batch' | 'idle' | 'fifo' | 'rr'

export interface SchedOptions {
  /** Scheduling policy set before the workload starts (SCHED_OTHER when unset). */
  policy?: Policy
  /** RT priority 1..99 for 'fifo'/'rr' (default 1). */
  priority?: number
  /** Nice value -20..19. */
  nice?: number
}

export type WorkTypeName = 'spin' | 'yield' | 'mixed' | 'io-sync' | 'bursty' | 'pipe' | 'futex' | 'cache' | 'fork-exit' | 'nice-sweep' | 'affinity-churn' | 'policy-churn'

export interface WorkSpec extends SchedOptions {
  readonly type: WorkTypeName
  /** bursty: CPU burst length / sleep between bursts (ms). */
  burstMs?: number
  sleepMs?: number
  /** cache: buffer size (KiB) and stride (bytes). */
  sizeKb?: number
  stride?: number
  /** pipe, futex, affinity-churn, policy-churn: spin iterations between exchanges/changes. */
  spinIters?: number
  /** io-sync: a directory (a file per workload is made there) or a block device such as /dev/vda. */
  path?: string
}

export const WORK_TYPES: readonly WorkTypeName[] = [
  'spin',
  'yield',
  'mixed',
  'io-sync',
  'bursty',
  'pipe',
  'futex',
  'cache',
  'fork-exit',
  'nice-sweep',
  'affinity-churn',
  'policy-churn',
]

/** Types whose workloads run in partner pairs (ktstr: PipeIo, FutexPingPong). */
export const isPaired = (w: WorkSpec): boolean => w.type === 'pipe' || w.type === 'futex'

function make(type: WorkTypeName, o: Partial<WorkSpec> = {}): WorkSpec {
  const spec: WorkSpec = { ...o, type }
  validateWork(spec)
  return Object.freeze(spec)
}

export function validateWork(w: WorkSpec): void {
  const bad = (msg: string) => new KtstrError(`work.${camel(w.type)}(): ${msg}`)
  if (!WORK_TYPES.includes(w.type)) throw new KtstrError(`unknown work type "${w.type}"; one of ${WORK_TYPES.join(', ')}`)
  if (w.policy !== undefined && !['other', 'batch', 'idle', 'fifo', 'rr'].includes(w.policy)) {
    throw bad(`unknown policy "${w.policy}"; use 'other', 'batch', 'idle', 'fifo' or 'rr'`)
  }
  const rt = w.policy === 'fifo' || w.policy === 'rr'
  if (w.priority !== undefined) {
    if (!rt) throw bad(`priority applies to policy 'fifo' or 'rr' only (got policy ${w.policy ?? 'other'}); use nice for the others`)
    if (!Number.isInteger(w.priority) || w.priority < 1 || w.priority > 99) throw bad(`RT priority must be 1..99, got ${w.priority}`)
  }
  if (w.nice !== undefined && (!Number.isInteger(w.nice) || w.nice < -20 || w.nice > 19)) throw bad(`nice must be -20..19, got ${w.nice}`)
  const positive = (k: 'burstMs' | 'sleepMs' | 'sizeKb' | 'stride' | 'spinIters', min = 1) => {
    const v = w[k]
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw bad(`${k} must be a whole number >= ${min}, got ${v}`)
  }
  positive('burstMs')
  positive('sleepMs', 0)
  positive('sizeKb')
  positive('stride')
  positive('spinIters')
}

const camel = (t: string) => t.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())

export const work = {
  /** Busy loop; 1024 work units per checkpoint (ktstr CpuSpin). */
  spin: (o?: SchedOptions) => make('spin', o),
  /** sched_yield() every iteration, one unit each (ktstr YieldHeavy). */
  yield: (o?: SchedOptions) => make('yield', o),
  /** 1024 spins then a yield (ktstr Mixed). */
  mixed: (o?: SchedOptions) => make('mixed', o),
  /** 64 KiB write + fdatasync + 100 µs sleep, against a tmpfs file (default /tmp) or a block device (ktstr IoSync). */
  ioSync: (o?: SchedOptions & { path?: string }) => make('io-sync', o),
  /** CPU bursts of burstMs, sleeping sleepMs between them (ktstr Bursty, default 50/100). */
  bursty: (o?: SchedOptions & { burstMs?: number; sleepMs?: number }) => make('bursty', { burstMs: 50, sleepMs: 100, ...o }),
  /** Pairs exchanging 8-byte timestamps over FIFOs after each spin burst (ktstr PipeIo). */
  pipe: (o?: SchedOptions & { spinIters?: number }) => make('pipe', o),
  /** Pairs handing a turn back and forth through a shared futex word (ktstr FutexPingPong). */
  futex: (o?: SchedOptions & { spinIters?: number }) => make('futex', o),
  /** Strided read-modify-write over a sizeKb buffer (ktstr CachePressure, default 32 KiB, stride 64). */
  cache: (o?: SchedOptions & { sizeKb?: number; stride?: number }) => make('cache', { sizeKb: 32, stride: 64, ...o }),
  /** fork() + child _exit(0) + waitpid (ktstr ForkExit). */
  forkExit: (o?: SchedOptions) => make('fork-exit', o),
  /** Cycles its nice value through -20..19, spinning and yielding at each (ktstr NiceSweep); a given nice is only where it starts. */
  niceSweep: (o?: SchedOptions) => make('nice-sweep', o),
  /** sched_setaffinity() to a random allowed CPU, then yield (ktstr AffinityChurn). */
  affinityChurn: (o?: SchedOptions & { spinIters?: number }) => make('affinity-churn', o),
  /** Cycles SCHED_OTHER/BATCH/IDLE/FIFO/RR (RT ones when permitted) (ktstr PolicyChurn); a given policy is only where it starts. */
  policyChurn: (o?: SchedOptions & { spinIters?: number }) => make('policy-churn', o),
} as const

/** Short label for messages: "spin", "spin, policy idle", "spin, fifo 50". */
export function describeWork(w: WorkSpec): string {
  const parts: string[] = [w.type]
  if (w.policy && w.policy !== 'other') parts.push(w.policy === 'fifo' || w.policy === 'rr' ? `${w.policy} ${w.priority ?? 1}` : `policy ${w.policy}`)
  if (w.nice !== undefined) parts.push(`nice ${w.nice}`)
  return parts.join(', ')
}
