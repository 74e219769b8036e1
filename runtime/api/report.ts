/**
 * What a run reports: per-workload telemetry (ktstr WorkerReport), per-cgroup aggregates and the
 * scheduler's state. Plain data underneath (`toJSON()` / `reportFromJSON()`), so a report crosses to
 * the host intact and the matchers work on either side.
 */
import { KtstrError } from '../protocol/errors.js'
import type { MonitorWindow } from '../protocol/monitor.js'
import type { WorkTypeName } from './work.js'

export interface MigrationEvent {
  atMs: number
  from: number
  to: number
}

export interface WorkerTelemetry {
  /** Index of the workload in the run (spawn order). */
  id: number
  pid: number
  /** Cgroup the workload was spawned in ('/' for host workloads). */
  cgroup: string
  /** Cgroup it was in when it stopped (differs after op.moveTasks). */
  finalCgroup: string
  workType: WorkTypeName
  /** "spin, policy idle" */
  work: string
  /** Policy and nice in effect when it started. */
  policy: string
  nice: number
  /** Run-relative start (go) and stop times. */
  startedAtMs: number
  stoppedAtMs: number
  workUnits: number
  iterations: number
  /** CPU time of the workload process (CLOCK_PROCESS_CPUTIME_ID). */
  cpuTimeNs: number
  wallTimeNs: number
  /** wall − CPU: runnable wait plus voluntary sleep. */
  offCpuNs: number
  offCpuPct: number
  /** /proc/self/schedstat deltas: on-CPU time, time waiting on a runqueue, timeslices. */
  schedCpuTimeNs: number
  runDelayNs: number
  timeslices: number
  migrations: number
  migrationEvents: MigrationEvent[]
  cpusUsed: number[]
  /** When each CPU was first and last seen (run-relative ms). */
  cpuSeen: { cpu: number; firstMs: number; lastMs: number }[]
  /** Longest gap between work checkpoints, less voluntary waits; the CPU it last ran on; when it began. */
  maxGapMs: number
  maxGapCpu: number
  maxGapAtMs: number
  /** Wake-up latency samples (ns, reservoir of at most 256) around blocking calls, and their totals. */
  wakeLatencyNs: number[]
  wakeSamples: number
  wakeLatencyMaxNs: number
  wakeLatencyMeanNs: number
  wakeLatencyP99Ns: number
  /** Work-type specific counts: exchanges, forks, yields, niceChanges, policyChanges, … */
  counters: Record<string, number>
  /**
   * The CPUs its cgroup allowed over time (effective cpuset, run-relative). A change (cpuset write,
   * cgroup move) began at `atMs` and had completed by `settledMs`.
   */
  allowedCpus: { atMs: number; settledMs?: number; cpus: number[] }[]
  /** Affinity given at spawn or by op.setAffinity, if any. */
  affinity?: number[]
}

export interface SchedulerState {
  /** The scheduler's name (`scx_simple`), or 'eevdf' when no sched_ext scheduler ran. */
  name: string
  kind: 'sched_ext' | 'eevdf'
  /** sched_ext ops name (`simple`) while attached. */
  ops?: string
  /** Still attached when the run ended (always false for EEVDF). */
  attached: boolean
  /** Attached at the start of the run. */
  attachedAtStart: boolean
  /** When it stopped being attached (run-relative ms), if it did. */
  detachedAtMs?: number
  /** sched_ext's exit reason from the kernel log, e.g. 'sched_ext: BPF scheduler "simple" disabled (runtime error)'. */
  exitReason?: string
}

export interface StepRecord {
  index: number
  label?: string
  atMs: number
  ops: string[]
}

export interface ReportData {
  version: 1
  durationMs: number
  /** The run on the guest's monotonic clock (ns): from the workloads' start to their stop. */
  span?: { startNs: number; endNs: number }
  /** How long run() waited for the runs before it in this guest (they take turns). */
  queuedMs?: number
  /** `1n2l2c1t (4 CPUs)` */
  topology: string
  scheduler: SchedulerState
  workers: WorkerTelemetry[]
  /** Effective cpuset history of every cgroup of the run. */
  cgroupCpusets: Record<string, { atMs: number; cpus: number[] }[]>
  steps: StepRecord[]
  /** The host monitor's per-CPU samples in the run's window, or why there are none (monitor.ts). */
  monitor?: MonitorWindow | { off: string }
}

/** Anything the matchers accept: a report, a cgroup of it, or workloads. */
export interface WorkerSet {
  readonly workers: readonly WorkerTelemetry[]
  /** For messages: "cgroup a" or "run". */
  readonly label?: string
  readonly scheduler?: SchedulerState
}

export interface CgroupReport extends WorkerSet {
  name: string
  label: string
  /** Effective cpuset at the end of the run (or when the cgroup was removed). */
  cpuset: number[]
  workUnits: number
  cpuTimeNs: number
  runDelayNs: number
  migrations: number
  cpusUsed: number[]
  maxGapMs: number
  /** Off-CPU% spread (max − min, percentage points): ktstr's fairness measure. */
  offCpuSpreadPct: number
  meanOffCpuPct: number
  wakeLatencyP99Ns: number
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))
  return sorted[idx]!
}

export function summarize(name: string, workers: readonly WorkerTelemetry[], cpuset: number[], scheduler?: SchedulerState): CgroupReport {
  const sum = (f: (w: WorkerTelemetry) => number) => workers.reduce((n, w) => n + f(w), 0)
  const pcts = workers.filter((w) => w.wallTimeNs > 0).map((w) => w.offCpuPct)
  const r: CgroupReport = {
    name,
    label: `cgroup "${name}"`,
    workers,
    cpuset,
    workUnits: sum((w) => w.workUnits),
    cpuTimeNs: sum((w) => w.cpuTimeNs),
    runDelayNs: sum((w) => w.runDelayNs),
    migrations: sum((w) => w.migrations),
    cpusUsed: [...new Set(workers.flatMap((w) => w.cpusUsed))].sort((a, b) => a - b),
    maxGapMs: Math.max(0, ...workers.map((w) => w.maxGapMs)),
    offCpuSpreadPct: pcts.length ? Math.max(...pcts) - Math.min(...pcts) : 0,
    meanOffCpuPct: pcts.length ? pcts.reduce((a, b) => a + b, 0) / pcts.length : 0,
    wakeLatencyP99Ns: percentile(
      workers.flatMap((w) => w.wakeLatencyNs),
      0.99,
    ),
  }
  if (scheduler) Object.assign(r, { scheduler })
  return r
}

export class Report implements WorkerSet {
  readonly label = 'run'
  readonly data: ReportData

  constructor(data: ReportData) {
    this.data = data
  }

  get workers(): readonly WorkerTelemetry[] {
    return this.data.workers
  }

  get scheduler(): SchedulerState {
    return this.data.scheduler
  }

  get durationMs(): number {
    return this.data.durationMs
  }

  get steps(): readonly StepRecord[] {
    return this.data.steps
  }

  /** The host monitor's per-CPU samples in the run's window; throws the one-line reason when the monitor is off. */
  get monitor(): MonitorWindow {
    const m = this.data.monitor
    if (!m) throw new KtstrError('this report has no monitor samples: run() ran outside a ktstr guest')
    if ('off' in m) throw new KtstrError(m.off)
    return m
  }

  /** Names of the cgroups that had workloads, in first-spawn order ('/' = host workloads). */
  get cgroupNames(): string[] {
    return [...new Set(this.data.workers.map((w) => w.cgroup))]
  }

  /** Every cgroup that had workloads, aggregated. */
  get cgroups(): CgroupReport[] {
    return this.cgroupNames.map((n) => this.cgroup(n))
  }

  /** Workloads spawned in `name`, with aggregates. */
  cgroup(name: string): CgroupReport {
    const workers = this.data.workers.filter((w) => w.cgroup === name)
    if (workers.length === 0 && !(name in this.data.cgroupCpusets)) {
      throw new KtstrError(`no cgroup "${name}" in this run; it had ${this.cgroupNames.map((n) => `"${n}"`).join(', ') || 'none'}`)
    }
    const hist = this.data.cgroupCpusets[name]
    return summarize(name, workers, hist?.at(-1)?.cpus ?? [], this.scheduler)
  }

  /** The workload with this pid. */
  worker(pid: number): WorkerTelemetry {
    const w = this.data.workers.find((x) => x.pid === pid)
    if (!w) throw new KtstrError(`no worker with pid ${pid} in this run`)
    return w
  }

  toJSON(): ReportData {
    return this.data
  }
}

export function reportFromJSON(json: string | ReportData): Report {
  const data = typeof json === 'string' ? (JSON.parse(json) as ReportData) : json
  if (data?.version !== 1 || !Array.isArray(data.workers)) throw new KtstrError('not a ktstr run report (expected version 1 with workers)')
  return new Report(data)
}
