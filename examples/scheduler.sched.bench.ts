/**
 * Scheduler benchmarks: `npx vitest bench --project sched` runs this file in a guest, each bench()
 * one run() per iteration. No scheduler in an `@ktstr` docblock here: vitest.config.ts takes it from
 * SCHEDULER, so two runs of this file measure two schedulers under the same benchmark ids and
 * `--compare` lines them up:
 *
 *   npx vitest bench --run --project sched --outputJson eevdf.json
 *   SCHEDULER=scx_simple npx vitest bench --run --project sched --compare eevdf.json
 */
import { cgroup, schedBench, work } from 'ktstr'
import { bench, describe } from 'vitest'

const spinners = cgroup('spin').workers(4, work.spin())
const pipePair = cgroup('pipe').workers(2, work.pipe())

// hz: million work units/s of the spinners together; the other columns: ns per work unit.
describe('4 spinners on 2 CPUs: throughput', () => {
  bench('alone', ...schedBench({ duration: '2s', cgroups: [spinners] }))
  bench('beside a pipe pair', ...schedBench({ duration: '2s', cgroups: [spinners, pipePair] }, { cgroup: 'spin' }))
})

// Columns: the run's wake-up latency p50 in µs (hz = 1000 / latency, so a higher hz is better here
// too). metric 'wakeLatencyP99' takes the tail instead; under TCG it moves a lot from run to run.
describe('a pipe pair: wake-up latency', () => {
  bench('alone', ...schedBench({ duration: '2s', cgroups: [pipePair] }, { metric: 'wakeLatencyP50' }))
  bench('beside 4 spinners', ...schedBench({ duration: '2s', cgroups: [spinners, pipePair] }, { cgroup: 'pipe', metric: 'wakeLatencyP50' }))
})
