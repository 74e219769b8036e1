import { describe, expect, it } from 'vitest'
import { allowedTimeline, toTelemetry, type WorkloadContext } from '../../runtime/api/telemetry.js'
import { work } from '../../runtime/api/work.js'
import type { RawWorkloadReport } from '../../runtime/api/workload-process.js'

const MS = 1e6
const T0 = 5_000 * MS // run start (monotonic)

const raw = (o: Partial<RawWorkloadReport> = {}): RawWorkloadReport => ({
  pid: 42,
  type: 'spin',
  workUnits: 2048,
  iterations: 2,
  wallTimeNs: 1000 * MS,
  cpuTimeNs: 400 * MS,
  schedstat: true,
  schedCpuTimeNs: 401 * MS,
  runDelayNs: 550 * MS,
  timeslices: 30,
  maxGapNs: 120 * MS,
  maxGapCpu: 1,
  maxGapAtNs: 300 * MS,
  migrations: 1,
  migrationEvents: [[500 * MS, 0, 1]],
  cpus: [
    [0, 1 * MS, 499 * MS],
    [1, 500 * MS, 999 * MS],
  ],
  wakeSamples: 4,
  wakeLatencyMaxNs: 900,
  wakeLatencySumNs: 1000,
  wakeLatencyNs: [100, 200, 900, 50],
  policy: 'other',
  nice: 0,
  stoppedBy: 'signal',
  counters: { yields: 3 },
  ...o,
})

function ctx(o: Partial<WorkloadContext> = {}): WorkloadContext {
  return {
    id: 3,
    cgroup: 'a',
    current: 'a',
    work: work.spin({ policy: 'batch' }),
    goNs: T0 + 200 * MS, // started 200 ms into the run (e.g. by op.spawn)
    runT0Ns: T0,
    placements: [{ atNs: T0 + 200 * MS, doneNs: T0 + 200 * MS, cgroup: 'a' }],
    history: new Map([['a', [{ atNs: T0 - 10 * MS, doneNs: T0 - 10 * MS, cpus: [0, 1, 2, 3] }]]]),
    ...o,
  }
}

describe('worker telemetry', () => {
  it('moves worker-relative nanoseconds to run-relative milliseconds and derives off-CPU time', () => {
    const t = toTelemetry(ctx(), raw())
    expect([t.startedAtMs, t.stoppedAtMs]).toEqual([200, 1200])
    expect([t.maxGapMs, t.maxGapCpu, t.maxGapAtMs]).toEqual([120, 1, 500])
    expect(t.migrationEvents).toEqual([{ atMs: 700, from: 0, to: 1 }])
    expect(t.cpuSeen).toEqual([
      { cpu: 0, firstMs: 201, lastMs: 699 },
      { cpu: 1, firstMs: 700, lastMs: 1199 },
    ])
    expect(t.cpusUsed).toEqual([0, 1])
    expect([t.offCpuNs, t.offCpuPct]).toEqual([600 * MS, 60])
    expect([t.workType, t.work, t.cgroup, t.finalCgroup]).toEqual(['spin', 'spin, policy batch', 'a', 'a'])
    expect([t.wakeLatencyMeanNs, t.wakeLatencyP99Ns]).toEqual([250, 900])
    expect(t.allowedCpus).toEqual([{ atMs: 200, settledMs: 200, cpus: [0, 1, 2, 3] }])
    expect(t.affinity).toBeUndefined()
  })

  it('follows the worker through cgroup moves and cpuset changes, with when each settled', () => {
    const history = new Map([
      [
        'a',
        [
          { atNs: T0, doneNs: T0, cpus: [0, 1] },
          { atNs: T0 + 300 * MS, doneNs: T0 + 320 * MS, cpus: [0] },
          { atNs: T0 + 900 * MS, doneNs: T0 + 905 * MS, cpus: [1] },
        ],
      ],
      [
        'b',
        [
          { atNs: T0, doneNs: T0, cpus: [2, 3] },
          { atNs: T0 + 700 * MS, doneNs: T0 + 710 * MS, cpus: [3] },
        ],
      ],
    ])
    const placements = [
      { atNs: T0, doneNs: T0, cgroup: 'a' },
      { atNs: T0 + 500 * MS, doneNs: T0 + 570 * MS, cgroup: 'b' }, // a slow move
    ]
    const c = ctx({ goNs: T0, placements, history, current: 'b' })
    expect(allowedTimeline(c, T0 + 1000 * MS)).toEqual([
      { atMs: 0, settledMs: 0, cpus: [0, 1] },
      { atMs: 300, settledMs: 320, cpus: [0] },
      { atMs: 500, settledMs: 570, cpus: [2, 3] },
      { atMs: 700, settledMs: 710, cpus: [3] },
      // a's change at 900 ms no longer concerns this workload
    ])
    expect(toTelemetry(c, raw()).finalCgroup).toBe('b')
  })
})
