/**
 * Checks and matchers over synthetic reports: pass/fail decisions at ktstr's thresholds, and failure
 * messages that name the worker, its cgroup, the CPU and the time.
 */

import {
  checkCpuset,
  checkFairness,
  checkMaxGap,
  checkScheduler,
  checkStarvation,
  matchers,
  Report,
  type ReportData,
  registerMatchers,
  reportFromJSON,
  type SchedulerState,
  type WorkerTelemetry,
} from 'ktstr'
import { describe, expect, it } from 'vitest'
import { failure } from '../helpers/failure.js'

registerMatchers(expect)

let nextPid = 100
function worker(o: Partial<WorkerTelemetry> = {}): WorkerTelemetry {
  const wall = o.wallTimeNs ?? 2e9
  const cpu = o.cpuTimeNs ?? 1e9
  return {
    id: nextPid,
    pid: nextPid++,
    cgroup: 'a',
    finalCgroup: o.cgroup ?? 'a',
    workType: 'spin',
    work: 'spin',
    policy: 'other',
    nice: 0,
    startedAtMs: 0,
    stoppedAtMs: wall / 1e6,
    workUnits: 1_000_000,
    iterations: 1000,
    cpuTimeNs: cpu,
    wallTimeNs: wall,
    offCpuNs: wall - cpu,
    offCpuPct: ((wall - cpu) / wall) * 100,
    schedCpuTimeNs: cpu,
    runDelayNs: wall - cpu,
    timeslices: 100,
    migrations: 0,
    migrationEvents: [],
    cpusUsed: [0],
    cpuSeen: [{ cpu: 0, firstMs: 0, lastMs: 2000 }],
    maxGapMs: 20,
    maxGapCpu: 0,
    maxGapAtMs: 500,
    wakeLatencyNs: [],
    wakeSamples: 0,
    wakeLatencyMaxNs: 0,
    wakeLatencyMeanNs: 0,
    wakeLatencyP99Ns: 0,
    counters: {},
    allowedCpus: [{ atMs: 0, cpus: [0, 1, 2, 3] }],
    ...o,
  }
}

const attached: SchedulerState = { name: 'scx_simple', kind: 'sched_ext', ops: 'simple', attached: true, attachedAtStart: true }

function report(workers: WorkerTelemetry[], scheduler: SchedulerState = attached, cpusets: ReportData['cgroupCpusets'] = {}): Report {
  return new Report({ version: 1, durationMs: 2000, topology: '1n2l2c1t (4 CPUs)', scheduler, workers, cgroupCpusets: cpusets, steps: [] })
}

describe('starvation and gaps', () => {
  it('passes when every worker worked and no gap reached 2000 ms', () => {
    const r = report([worker(), worker({ maxGapMs: 1999 })])
    expect(checkStarvation(r).pass).toBe(true)
    expect(r).toHaveNoStarvation()
  })

  it('names a starved worker, its cgroup, work, CPU and window', () => {
    const starved = worker({ pid: 4242, cgroup: 'starve', work: 'spin, policy idle', workUnits: 0, maxGapMs: 2000, maxGapCpu: 1, maxGapAtMs: 3 })
    const r = report([worker(), starved])
    const msg = failure(() => expect(r).toHaveNoStarvation())
    expect(msg).toContain('toHaveNoStarvation failed for run:')
    expect(msg).toContain('worker 4242 (cgroup "starve", spin, policy idle) starved: 0 work units in 2000 ms (from +0 ms, last seen on cpu1)')
    expect(msg).toContain('worker 4242 (cgroup "starve", spin, policy idle) stuck 2000 ms on cpu1 at +3 ms (limit 2000 ms)')
  })

  it('fails on a long gap even with work done, at a custom limit too', () => {
    const slow = worker({ pid: 77, cgroup: 'b', maxGapMs: 950.4, maxGapCpu: 2, maxGapAtMs: 1204.6 })
    const r = report([worker(), slow])
    expect(r).toHaveNoStarvation()
    expect(checkStarvation(r, { maxGapMs: 900 }).failures).toEqual(['worker 77 (cgroup "b", spin) stuck 950 ms on cpu2 at +1205 ms (limit 900 ms)'])
    expect(failure(() => expect(r).toHaveMaxGapBelow(500))).toMatch(/worker 77 \(cgroup "b", spin\) stuck 950 ms on cpu2 at \+1205 ms \(limit 500 ms\)/)
    expect(r).toHaveMaxGapBelow(1000)
    expect(checkMaxGap(r, 1000).summary).toContain('worst gap 950 ms by worker 77')
  })

  it('supports .not with a message saying what was measured', () => {
    const r = report([worker({ pid: 5, maxGapMs: 12 })])
    expect(r).not.toHaveMaxGapBelow(10)
    expect(failure(() => expect(r).not.toHaveNoStarvation())).toMatch(
      /expected toHaveNoStarvation to fail for run, but it passed: 1 workers all did work; worst gap 12 ms by worker 5/,
    )
  })

  it('rejects something that is not a report', () => {
    expect(failure(() => expect(42).toHaveNoStarvation())).toMatch(/expected a ktstr run report, r\.cgroup\(name\) or worker telemetry, got number/)
    expect(failure(() => expect(report([])).toHaveMaxGapBelow(0))).toMatch(/needs a limit in milliseconds above 0/)
    expect(failure(() => expect(report([])).toHaveNoStarvation())).toMatch(/no workers to check/)
  })
})

describe('fairness', () => {
  const pct = (off: number) => ({ wallTimeNs: 2e9, cpuTimeNs: 2e9 * (1 - off / 100), offCpuPct: off })

  it('passes within the spread, per cgroup, and accepts r.cgroup(name)', () => {
    const r = report([worker({ ...pct(50) }), worker({ ...pct(60) }), worker({ cgroup: 'b', ...pct(10) }), worker({ cgroup: 'b', ...pct(90) })])
    expect(r.cgroup('a')).toBeFairWithin({ spreadPct: 15 })
    expect(r.cgroup('a')).toBeFairWithin()
    expect(r.cgroup('b')).not.toBeFairWithin()
    expect(r.cgroup('a').offCpuSpreadPct).toBeCloseTo(10)
  })

  it('names the cgroup and both extreme workers with their CPUs', () => {
    const hi = worker({ pid: 11, ...pct(61), cpusUsed: [0, 1], workUnits: 400 })
    const lo = worker({ pid: 12, ...pct(38.5), cpusUsed: [2], workUnits: 900 })
    const msg = failure(() => expect(report([hi, lo])).toBeFairWithin({ spreadPct: 15 }))
    expect(msg).toContain(
      'cgroup "a": off-CPU spread 22.5% is not within 15% — worker 11 off-CPU 61.0% (400 work units, cpus 0-1) vs worker 12 off-CPU 38.5% (900 work units, cpus 2)',
    )
    expect(checkFairness([hi, lo], { spreadPct: 25 }).pass).toBe(true)
  })
})

describe('cpuset isolation', () => {
  it('passes when every sighting is inside the cpuset of its time', () => {
    const w = worker({
      allowedCpus: [{ atMs: 0, cpus: [0, 1] }],
      cpusUsed: [0, 1],
      cpuSeen: [
        { cpu: 0, firstMs: 0, lastMs: 900 },
        { cpu: 1, firstMs: 5, lastMs: 1990 },
      ],
    })
    expect(report([w])).toStayInCpuset()
  })

  it('names the worker, the CPU, the time and the cpuset', () => {
    const w = worker({
      pid: 31,
      cgroup: 'pinned',
      allowedCpus: [{ atMs: 0, cpus: [0, 1] }],
      cpusUsed: [1, 3],
      cpuSeen: [
        { cpu: 1, firstMs: 0, lastMs: 400 },
        { cpu: 3, firstMs: 412.2, lastMs: 1800 },
      ],
    })
    expect(failure(() => expect(report([w])).toStayInCpuset())).toContain('worker 31 (cgroup "pinned", spin) ran on cpu3 at +412 ms, outside its cpuset 0-1')
  })

  it('follows cpuset changes over time, with a grace period after each change', () => {
    const allowedCpus = [
      { atMs: 0, cpus: [0, 1, 2, 3] },
      { atMs: 1000, cpus: [0] },
    ]
    // On cpu2 until just after the shrink (within the 50 ms grace): fine.
    const ok = worker({
      allowedCpus,
      cpusUsed: [0, 2],
      cpuSeen: [
        { cpu: 2, firstMs: 10, lastMs: 1020 },
        { cpu: 0, firstMs: 1030, lastMs: 1990 },
      ],
    })
    expect(checkCpuset([ok]).pass).toBe(true)
    // Still on cpu2 half a second after the shrink: not fine.
    const bad = worker({
      pid: 9,
      allowedCpus,
      cpusUsed: [0, 2],
      cpuSeen: [
        { cpu: 2, firstMs: 10, lastMs: 1500 },
        { cpu: 0, firstMs: 1600, lastMs: 1990 },
      ],
    })
    expect(checkCpuset([bad]).failures).toEqual(['worker 9 (cgroup "a", spin) ran on cpu2 at +1500 ms, outside its cpuset 0'])
    // A slow change (a cgroup move whose write took 70 ms): old CPUs stay acceptable until it settled, plus the grace.
    const slow = [
      { atMs: 0, cpus: [3] },
      { atMs: 1000, settledMs: 1070, cpus: [0, 1] },
    ]
    const moving = (pid: number, lastOn3: number) =>
      worker({
        pid,
        allowedCpus: slow,
        cpusUsed: [0, 3],
        cpuSeen: [
          { cpu: 3, firstMs: 0, lastMs: lastOn3 },
          { cpu: 0, firstMs: lastOn3 + 1, lastMs: 1990 },
        ],
      })
    expect(checkCpuset([moving(20, 1110)]).pass).toBe(true)
    expect(checkCpuset([moving(21, 1200)]).failures).toEqual(['worker 21 (cgroup "a", spin) ran on cpu3 at +1200 ms, outside its cpuset 0-1'])
    // Migration events are evidence too.
    const hop = worker({
      pid: 10,
      allowedCpus,
      cpusUsed: [0],
      cpuSeen: [{ cpu: 0, firstMs: 0, lastMs: 1990 }],
      migrationEvents: [{ atMs: 1200, from: 0, to: 3 }],
    })
    expect(checkCpuset([hop]).failures[0]).toContain('ran on cpu3 at +1200 ms')
  })
})

describe('scheduler attachment', () => {
  it('passes while attached, fails with the exit reason and time when ejected, and for EEVDF', () => {
    expect(report([worker()])).toKeepSchedulerAttached()
    const ejected: SchedulerState = {
      ...attached,
      attached: false,
      detachedAtMs: 1234,
      exitReason: 'sched_ext: BPF scheduler "simple" disabled (runtime error)',
    }
    expect(failure(() => expect(report([worker()], ejected)).toKeepSchedulerAttached())).toBe(
      'toKeepSchedulerAttached failed: scheduler scx_simple detached at +1234 ms: sched_ext: BPF scheduler "simple" disabled (runtime error)',
    )
    expect(checkScheduler({ name: 'eevdf', kind: 'eevdf', attached: false, attachedAtStart: false }).failures).toEqual(['no sched_ext scheduler was attached (the run used EEVDF)'])
    // r.cgroup(name) carries the scheduler too.
    expect(report([worker()]).cgroup('a')).toKeepSchedulerAttached()
  })
})

describe('reports', () => {
  it('aggregates per cgroup and survives JSON to the host', () => {
    const r = report([worker({ workUnits: 10, cpusUsed: [0] }), worker({ workUnits: 5, cpusUsed: [2], maxGapMs: 70 }), worker({ cgroup: '/', workUnits: 1 })], attached, {
      a: [{ atMs: 0, cpus: [0, 1, 2] }],
    })
    expect(r.cgroupNames).toEqual(['a', '/'])
    const a = r.cgroup('a')
    expect([a.workUnits, a.maxGapMs, a.cpusUsed, a.cpuset, a.workers.length]).toEqual([15, 70, [0, 2], [0, 1, 2], 2])
    expect(() => r.cgroup('nope')).toThrow('no cgroup "nope" in this run; it had "a", "/"')
    const back = reportFromJSON(JSON.stringify(r))
    expect(back.cgroup('a').workUnits).toBe(15)
    expect(back.scheduler).toEqual(attached)
    expect(back).toHaveNoStarvation()
    expect(() => reportFromJSON('{"x":1}')).toThrow(/not a ktstr run report/)
  })

  it('exposes the matchers object for other expect implementations', () => {
    const m = matchers.toHaveMaxGapBelow.call({ isNot: false }, report([worker({ maxGapMs: 3000 })]), 2000)
    expect(m.pass).toBe(false)
    expect(m.message()).toContain('stuck 3000 ms')
  })
})
