/**
 * A workload's raw report (times relative to its own go, in ns) → run telemetry (times relative to the
 * run's start, in ms), with the CPUs its cgroup allowed over the workload's life.
 */
import { percentile, type WorkerTelemetry } from './report.js'
import { describeWork, type WorkSpec } from './work.js'
import type { RawWorkloadReport } from './workload-process.js'

/** An effective-cpuset change of a cgroup: began at atNs (before the write), done by doneNs. */
export interface CpusetChange {
  atNs: number
  doneNs: number
  cpus: number[]
}

/** A workload's cgroup membership from atNs (move began) / doneNs (move done). */
export interface Placement {
  atNs: number
  doneNs: number
  cgroup: string
}

export interface WorkloadContext {
  id: number
  /** Cgroup it was spawned in, and where it is now. */
  cgroup: string
  current: string
  work: WorkSpec
  affinity?: number[]
  /** Its go time and the run's start, CLOCK_MONOTONIC ns. */
  goNs: number
  runT0Ns: number
  placements: readonly Placement[]
  /** Cpuset history of every cgroup, by name. */
  history: ReadonlyMap<string, readonly CpusetChange[]>
}

const toMs = (ns: number, t0: number) => Math.max(0, (ns - t0) / 1e6)

/** The CPUs allowed to the workload over time: its placements crossed with each cgroup's cpuset history. */
export function allowedTimeline(c: WorkloadContext, endNs: number): WorkerTelemetry['allowedCpus'] {
  const out: WorkerTelemetry['allowedCpus'] = []
  c.placements.forEach((p, k) => {
    const until = c.placements[k + 1]?.atNs ?? endNs
    const h = c.history.get(p.cgroup) ?? []
    const current = h.filter((e) => e.atNs <= p.atNs).at(-1)
    if (current) out.push({ atMs: toMs(p.atNs, c.runT0Ns), settledMs: toMs(Math.max(p.doneNs, current.doneNs), c.runT0Ns), cpus: current.cpus })
    for (const e of h) {
      if (e.atNs > p.atNs && e.atNs < until) out.push({ atMs: toMs(e.atNs, c.runT0Ns), settledMs: toMs(e.doneNs, c.runT0Ns), cpus: e.cpus })
    }
  })
  return out
}

export function toTelemetry(c: WorkloadContext, r: RawWorkloadReport): WorkerTelemetry {
  const base = (c.goNs - c.runT0Ns) / 1e6
  const ms = (ns: number) => base + ns / 1e6
  const off = Math.max(0, r.wallTimeNs - r.cpuTimeNs)
  const t: WorkerTelemetry = {
    id: c.id,
    pid: r.pid,
    cgroup: c.cgroup,
    finalCgroup: c.current,
    workType: c.work.type,
    work: describeWork(c.work),
    policy: r.policy,
    nice: r.nice,
    startedAtMs: base,
    stoppedAtMs: ms(r.wallTimeNs),
    workUnits: r.workUnits,
    iterations: r.iterations,
    cpuTimeNs: r.cpuTimeNs,
    wallTimeNs: r.wallTimeNs,
    offCpuNs: off,
    offCpuPct: r.wallTimeNs > 0 ? (off / r.wallTimeNs) * 100 : 0,
    schedCpuTimeNs: r.schedCpuTimeNs,
    runDelayNs: r.runDelayNs,
    timeslices: r.timeslices,
    migrations: r.migrations,
    migrationEvents: r.migrationEvents.map(([at, from, to]) => ({ atMs: ms(at), from, to })),
    cpusUsed: r.cpus.map(([cpu]) => cpu),
    cpuSeen: r.cpus.map(([cpu, first, last]) => ({ cpu, firstMs: ms(first), lastMs: ms(last) })),
    maxGapMs: r.maxGapNs / 1e6,
    maxGapCpu: r.maxGapCpu,
    maxGapAtMs: ms(r.maxGapAtNs),
    wakeLatencyNs: r.wakeLatencyNs,
    wakeSamples: r.wakeSamples,
    wakeLatencyMaxNs: r.wakeLatencyMaxNs,
    wakeLatencyMeanNs: r.wakeSamples ? r.wakeLatencySumNs / r.wakeSamples : 0,
    wakeLatencyP99Ns: percentile(r.wakeLatencyNs, 0.99),
    counters: r.counters,
    allowedCpus: allowedTimeline(c, c.goNs + r.wallTimeNs),
  }
  if (c.affinity) t.affinity = c.affinity
  return t
}
