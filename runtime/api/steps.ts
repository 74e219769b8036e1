/**
 * Steps and ops (ktstr Step/Op/HoldSpec). A step runs its ops, then creates its own cgroups (ops run
 * before setup, as in ktstr), and then holds for `hold` (unlike ktstr, the time the ops took is not
 * counted: workloads added by a step get its whole hold even where starting them is slow); with `every`, the ops repeat at that interval during the hold (HoldSpec::Loop). A
 * step's own `cgroups` exist for that step only; cgroups added with `op.addCgroup` stay until
 * removed or the end of the run.
 */
import { KtstrError } from '../protocol/errors.js'
import { type AffinityInput, type CgroupDef, type CpusetInput, validateCgroupName } from './cgroup.js'
import { type Duration, parseDuration } from './duration.js'
import { isPaired, type WorkSpec, work as workTypes } from './work.js'

/** A fixed time, or a share of the run's `duration`: '25%' or { frac: 0.25 }. */
export type Hold = Duration | `${number}%` | { frac: number }

export type Op =
  | { kind: 'add-cgroup'; def: CgroupDef }
  | { kind: 'remove-cgroup'; name: string }
  | { kind: 'set-cpuset'; name: string; cpus: CpusetInput }
  | { kind: 'clear-cpuset'; name: string }
  | { kind: 'swap-cpusets'; a: string; b: string }
  | { kind: 'spawn'; name: string; count: number; work: WorkSpec; affinity?: AffinityInput }
  | { kind: 'stop'; name: string }
  | { kind: 'set-affinity'; name: string; affinity: AffinityInput }
  | { kind: 'move-tasks'; from: string; to: string }
  | { kind: 'spawn-host'; count: number | 'per-cpu'; work: WorkSpec }

export interface Step {
  hold: Hold
  ops?: readonly Op[]
  /** Cgroups that live for this step only. */
  cgroups?: readonly CgroupDef[]
  /** Repeat `ops` at this interval during the hold. */
  every?: Duration
  label?: string
}

export const op = {
  addCgroup: (def: CgroupDef): Op => ({ kind: 'add-cgroup', def }),
  removeCgroup: (name: string): Op => ({ kind: 'remove-cgroup', name: validateCgroupName(name) }),
  setCpuset: (name: string, cpus: CpusetInput): Op => ({ kind: 'set-cpuset', name: validateCgroupName(name), cpus }),
  clearCpuset: (name: string): Op => ({ kind: 'clear-cpuset', name: validateCgroupName(name) }),
  swapCpusets: (a: string, b: string): Op => ({ kind: 'swap-cpusets', a: validateCgroupName(a), b: validateCgroupName(b) }),
  spawn: (name: string, count: number, w: WorkSpec = workTypes.spin(), affinity?: AffinityInput): Op => {
    checkCount(count, w, `op.spawn("${name}")`)
    return affinity === undefined ? { kind: 'spawn', name: validateCgroupName(name), count, work: w } : { kind: 'spawn', name: validateCgroupName(name), count, work: w, affinity }
  },
  /** Stop the cgroup's workloads (their telemetry is kept); the cgroup stays. */
  stop: (name: string): Op => ({ kind: 'stop', name: validateCgroupName(name) }),
  setAffinity: (name: string, affinity: AffinityInput): Op => ({ kind: 'set-affinity', name: validateCgroupName(name), affinity }),
  /** Move every running workload of `from` into `to` (ktstr MoveAllTasks). */
  moveTasks: (from: string, to: string): Op => ({ kind: 'move-tasks', from: validateCgroupName(from), to: validateCgroupName(to) }),
  /** Workloads outside the test cgroups, in the test process's own cgroup (reported under cgroup '/'); 'per-cpu' = one per CPU. */
  spawnHost: (count: number | 'per-cpu', w: WorkSpec = workTypes.spin()): Op => {
    if (count !== 'per-cpu') checkCount(count, w, 'op.spawnHost()')
    return { kind: 'spawn-host', count, work: w }
  },
} as const

function checkCount(count: number, w: WorkSpec, where: string): void {
  if (!Number.isInteger(count) || count < 1) throw new KtstrError(`${where}: need a whole number of workers >= 1, got ${count}`)
  if (isPaired(w) && count % 2 !== 0) throw new KtstrError(`${where}: ${w.type} workers run in pairs; give an even number (got ${count})`)
}

export function step(hold: Hold, ...ops: Op[]): Step {
  return { hold, ops }
}

/** Milliseconds of a hold, given the run's total duration (needed for shares). */
export function holdMs(h: Hold, totalMs: number | undefined): number {
  const share = typeof h === 'object' ? h.frac : typeof h === 'string' && h.trim().endsWith('%') ? Number(h.trim().slice(0, -1)) / 100 : undefined
  if (share === undefined) return parseDuration(h as Duration, 'hold')
  if (!(share >= 0 && share <= 1)) throw new KtstrError(`bad hold ${JSON.stringify(h)}: a share must be within 0..100%`)
  if (totalMs === undefined) throw new KtstrError(`hold ${JSON.stringify(h)} is a share of the run; give run({ duration }) too`)
  return share * totalMs
}

/** run()'s length without an explicit duration or steps (ktstr's duration_s). */
export const DEFAULT_DURATION_MS = 2000

/**
 * How long a run lasts: its `duration` when given (steps holding longer stretch it), else the
 * steps' holds end to end, else DEFAULT_DURATION_MS.
 */
export function runLengthMs(totalMs: number | undefined, holds: readonly number[]): number {
  const held = holds.reduce((a, b) => a + b, 0)
  return Math.max(totalMs ?? (holds.length ? 0 : DEFAULT_DURATION_MS), held)
}

export function describeOp(o: Op): string {
  switch (o.kind) {
    case 'add-cgroup':
      return `add cgroup ${o.def.name}`
    case 'remove-cgroup':
      return `remove cgroup ${o.name}`
    case 'set-cpuset':
      return `set cpuset of ${o.name}`
    case 'clear-cpuset':
      return `clear cpuset of ${o.name}`
    case 'swap-cpusets':
      return `swap cpusets of ${o.a} and ${o.b}`
    case 'spawn':
      return `spawn ${o.count} ${o.work.type} in ${o.name}`
    case 'stop':
      return `stop ${o.name}`
    case 'set-affinity':
      return `set affinity in ${o.name}`
    case 'move-tasks':
      return `move tasks ${o.from} -> ${o.to}`
    case 'spawn-host':
      return `spawn ${o.count === 'per-cpu' ? 'one per CPU' : o.count} ${o.work.type} host workers`
  }
}
