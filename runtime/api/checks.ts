/**
 * The checks behind the matchers, as plain functions over telemetry (ktstr's assert.rs): starvation,
 * scheduling gaps, fairness spread, cpuset isolation, scheduler attachment. Messages name the workload,
 * its cgroup, the CPU and the run-relative time.
 */
import { formatCpuList } from '../protocol/cpulist.js'
import type { SchedulerState, WorkerSet, WorkerTelemetry } from './report.js'

/** ktstr's release thresholds (assert.rs): longest gap 2000 ms, off-CPU spread 15 points. */
export const DEFAULT_MAX_GAP_MS = 2000
export const DEFAULT_SPREAD_PCT = 15
/** How long after a cpuset change a workload may still be seen on a CPU the old cpuset allowed. */
export const DEFAULT_CPUSET_GRACE_MS = 50

export interface CheckResult {
  pass: boolean
  /** One line per problem, worst first. */
  failures: string[]
  /** One line describing the measured state (for `.not` messages and logs). */
  summary: string
}

export type Checkable = WorkerSet | readonly WorkerTelemetry[] | WorkerTelemetry

export function workersOf(x: Checkable): readonly WorkerTelemetry[] {
  if (Array.isArray(x)) return x as readonly WorkerTelemetry[]
  if (x && typeof x === 'object' && 'workers' in x && Array.isArray((x as WorkerSet).workers)) return (x as WorkerSet).workers
  if (x && typeof x === 'object' && 'pid' in x && 'workUnits' in x) return [x as WorkerTelemetry]
  throw new TypeError('expected a ktstr run report, a cgroup of one (r.cgroup(name)), or worker telemetry')
}

export const isCheckable = (x: unknown): x is Checkable => {
  try {
    workersOf(x as Checkable)
    return true
  } catch {
    return false
  }
}

export function describeWorker(w: WorkerTelemetry): string {
  const moved = w.finalCgroup !== w.cgroup ? `, now in "${w.finalCgroup}"` : ''
  return `worker ${w.pid} (cgroup "${w.cgroup}"${moved}, ${w.work})`
}

const ms = (x: number) => `${Math.round(x)} ms`
const at = (x: number) => `+${Math.round(x)} ms`

function result(failures: string[], summary: string): CheckResult {
  return { pass: failures.length === 0, failures, summary }
}

function gapFailures(workers: readonly WorkerTelemetry[], limitMs: number): string[] {
  return [...workers]
    .filter((w) => w.maxGapMs >= limitMs)
    .sort((a, b) => b.maxGapMs - a.maxGapMs)
    .map((w) => `${describeWorker(w)} stuck ${ms(w.maxGapMs)} on cpu${w.maxGapCpu} at ${at(w.maxGapAtMs)} (limit ${ms(limitMs)})`)
}

function worstGap(workers: readonly WorkerTelemetry[]): string {
  const w = [...workers].sort((a, b) => b.maxGapMs - a.maxGapMs)[0]
  return w ? `worst gap ${ms(w.maxGapMs)} by ${describeWorker(w)} on cpu${w.maxGapCpu} at ${at(w.maxGapAtMs)}` : 'no workers'
}

/** ktstr not_starved: every workload did work, and none waited `maxGapMs` or more between checkpoints. */
export function checkStarvation(x: Checkable, opts: { maxGapMs?: number } = {}): CheckResult {
  const workers = workersOf(x)
  const limit = opts.maxGapMs ?? DEFAULT_MAX_GAP_MS
  const starved = workers
    .filter((w) => w.workUnits === 0)
    .map((w) => `${describeWorker(w)} starved: 0 work units in ${ms(w.wallTimeNs / 1e6)} (from ${at(w.startedAtMs)}, last seen on cpu${w.maxGapCpu})`)
  const empty = workers.length === 0 ? ['no workers to check'] : []
  return result([...empty, ...starved, ...gapFailures(workers, limit)], `${workers.length} workers all did work; ${worstGap(workers)}`)
}

export function checkMaxGap(x: Checkable, limitMs: number): CheckResult {
  const workers = workersOf(x)
  return result(gapFailures(workers, limitMs), `${worstGap(workers)} (limit ${ms(limitMs)})`)
}

/** ktstr's fairness: within each cgroup, max − min off-CPU% of its workloads below `spreadPct` points. */
export function checkFairness(x: Checkable, opts: { spreadPct?: number } = {}): CheckResult {
  const limit = opts.spreadPct ?? DEFAULT_SPREAD_PCT
  const byCgroup = new Map<string, WorkerTelemetry[]>()
  for (const w of workersOf(x)) byCgroup.set(w.cgroup, [...(byCgroup.get(w.cgroup) ?? []), w])
  const failures: string[] = []
  const spreads: string[] = []
  for (const [name, ws] of byCgroup) {
    const timed = ws.filter((w) => w.wallTimeNs > 0)
    if (timed.length < 2) continue
    const lo = timed.reduce((a, b) => (b.offCpuPct < a.offCpuPct ? b : a))
    const hi = timed.reduce((a, b) => (b.offCpuPct > a.offCpuPct ? b : a))
    const spread = hi.offCpuPct - lo.offCpuPct
    spreads.push(`cgroup "${name}" ${spread.toFixed(1)}%`)
    if (spread >= limit) {
      const side = (w: WorkerTelemetry) => `worker ${w.pid} off-CPU ${w.offCpuPct.toFixed(1)}% (${w.workUnits} work units, cpus ${formatCpuList(w.cpusUsed)})`
      failures.push(`cgroup "${name}": off-CPU spread ${spread.toFixed(1)}% is not within ${limit}% — ${side(hi)} vs ${side(lo)}`)
    }
  }
  return result(failures, `off-CPU spread ${spreads.join(', ') || 'n/a (fewer than 2 workers per cgroup)'} (limit ${limit}%)`)
}

/**
 * The CPUs its cgroup allowed at `t`. While a change is in flight (from its start until `graceMs`
 * after it settled, time for the kernel to migrate the task) the CPUs allowed before count too.
 */
function allowedAt(w: WorkerTelemetry, t: number, graceMs: number): number[] | undefined {
  const h = w.allowedCpus
  if (!h.length) return undefined
  let i = -1
  for (let k = 0; k < h.length; k++) if (h[k]!.atMs <= t) i = k
  if (i < 0) i = 0
  const cpus = new Set(h[i]!.cpus)
  for (let k = i; k > 0 && t < (h[k]!.settledMs ?? h[k]!.atMs) + graceMs; k--) for (const c of h[k - 1]!.cpus) cpus.add(c)
  return [...cpus]
}

/** ktstr isolation: no workload was seen on a CPU outside its cgroup's cpuset at that time. */
export function checkCpuset(x: Checkable, opts: { graceMs?: number } = {}): CheckResult {
  const grace = opts.graceMs ?? DEFAULT_CPUSET_GRACE_MS
  const workers = workersOf(x)
  const failures: string[] = []
  for (const w of workers) {
    const points = [
      ...w.cpuSeen.flatMap((s) => [
        { t: s.firstMs, cpu: s.cpu },
        { t: s.lastMs, cpu: s.cpu },
      ]),
      ...w.migrationEvents.map((m) => ({ t: m.atMs, cpu: m.to })),
    ].sort((a, b) => a.t - b.t)
    const bad = new Map<number, number>()
    for (const p of points) {
      const allowed = allowedAt(w, p.t, grace)
      if (allowed && !allowed.includes(p.cpu) && !bad.has(p.cpu)) bad.set(p.cpu, p.t)
    }
    for (const [cpu, t] of bad) {
      const allowed = allowedAt(w, t, 0) ?? []
      failures.push(`${describeWorker(w)} ran on cpu${cpu} at ${at(t)}, outside its cpuset ${formatCpuList(allowed)}`)
    }
  }
  const used = formatCpuList([...new Set(workers.flatMap((w) => w.cpusUsed))])
  return result(failures, `${workers.length} workers stayed in their cpusets (used cpus ${used || 'none'})`)
}

export function checkScheduler(s: SchedulerState | undefined): CheckResult {
  if (!s) return result(['no scheduler state (pass the run report, or r.cgroup(name), not bare workers)'], 'unknown')
  if (s.kind === 'eevdf') return result(['no sched_ext scheduler was attached (the run used EEVDF)'], 'EEVDF')
  if (!s.attachedAtStart) return result([`scheduler ${s.name} was not attached when the run started`], s.name)
  if (!s.attached) {
    const when = s.detachedAtMs !== undefined ? ` at ${at(s.detachedAtMs)}` : ''
    return result([`scheduler ${s.name} detached${when}${s.exitReason ? `: ${s.exitReason}` : ''}`], `${s.name} detached`)
  }
  return result([], `scheduler ${s.name} (ops ${s.ops}) stayed attached`)
}
