/**
 * Scheduler benchmarks with Vitest's `bench()` (`vitest bench`, files `*.sched.bench.ts`):
 *
 *   bench('4 spinners', ...schedBench({ duration: '2s', cgroups: [cgroup('a').workers(4, work.spin())] }))
 *
 * Each iteration is one `run()`. Timing run() itself would measure the duration it was given, so the
 * benchmark's clock (tinybench's `now` option) advances by what the run measured instead, in units
 * that read well in Vitest's table: for `throughput` a sample is the nanoseconds one work unit took,
 * so hz is millions of work units per second; for the wake-up latencies a sample is the run's
 * latency in microseconds (hz = 1000 / latency). Either way a higher hz is better, so
 * `vitest bench --compare` shows a regression as ⇓. The runs' own figures go into the result's
 * `ktstr` field, which `--outputJson` writes beside tinybench's.
 */
import { KtstrError } from '../protocol/errors.js'
import { percentile, type Report } from './report.js'
import { type RunOptions, run } from './run.js'

export type SchedBenchMetric = 'throughput' | 'wakeLatencyP50' | 'wakeLatencyP99'

export interface SchedBenchOptions {
  /** What one sample is (default `throughput`): ns per work unit, or the run's wake-up latency p50/p99 in µs. */
  metric?: SchedBenchMetric
  /** Measured runs (default 3). */
  iterations?: number
  /** Runs before measuring, not counted (default 0). */
  warmup?: number
  /** Measure this cgroup's workloads only (default: all of the run's); the others are the load around them. */
  cgroup?: string
}

/** What one run measured, as `--outputJson` writes it (result.ktstr.runs). */
export interface SchedBenchRun {
  scheduler: string
  durationMs: number
  workUnits: number
  workUnitsPerSec: number
  wakeups: number
  wakeLatencyP50Us: number
  wakeLatencyP99Us: number
  /** Time the workloads waited on a runqueue, as a share of their wall time (%). */
  runDelayPct: number
}

export interface SchedBenchResult {
  metric: SchedBenchMetric
  /** What tinybench's samples (min, mean, p99 ...) are. */
  sampleUnit: string
  topology: string
  /** The cgroup measured; absent: every workload of the run. */
  cgroup?: string
  runs: SchedBenchRun[]
}

/** The parts of tinybench's options and task this uses (Vitest passes the options to tinybench as they are). */
export interface SchedBenchTinybenchOptions {
  time: number
  iterations: number
  warmupTime: number
  warmupIterations: number
  now: () => number
  teardown: (task: { setResult(result: object): void }, mode: 'run' | 'warmup') => void
}

const SAMPLE_UNITS: Record<SchedBenchMetric, string> = {
  throughput: 'ns per work unit of the measured workloads together (hz = million work units/s)',
  wakeLatencyP50: 'wake-up latency p50 in µs (hz = 1000 / latency)',
  wakeLatencyP99: 'wake-up latency p99 in µs (hz = 1000 / latency)',
}

/** `[fn, options]` for Vitest's `bench(name, fn, options)`: spread them in. */
export function schedBench(scenario: RunOptions, options: SchedBenchOptions = {}): [fn: () => Promise<void>, options: SchedBenchTinybenchOptions] {
  const metric = options.metric ?? 'throughput'
  if (!(metric in SAMPLE_UNITS)) throw new KtstrError(`schedBench: unknown metric ${JSON.stringify(metric)}; use ${Object.keys(SAMPLE_UNITS).join(', ')}`)
  const iterations = count(options.iterations ?? 3, 'iterations', 1)
  const warmup = count(options.warmup ?? 0, 'warmup', 0)
  let clock = 0
  let topology = ''
  const runs: SchedBenchRun[] = []
  const fn = async () => {
    const report = await run(scenario)
    const figures = measure(report, options.cgroup)
    topology = report.data.topology
    runs.push(figures)
    clock += sample(metric, figures)
  }
  const teardown: SchedBenchTinybenchOptions['teardown'] = (task, mode) => {
    if (mode === 'warmup') runs.length = 0
    else {
      const result: SchedBenchResult = { metric, sampleUnit: SAMPLE_UNITS[metric], topology, ...(options.cgroup === undefined ? {} : { cgroup: options.cgroup }), runs: [...runs] }
      task.setResult({ ktstr: result })
    }
  }
  // time 0: tinybench stops after `iterations` samples, whatever the clock says.
  return [fn, { time: 0, iterations, warmupTime: 0, warmupIterations: warmup, now: () => clock, teardown }]
}

/** One sample on the benchmark's clock (see the file's comment for the units). */
function sample(metric: SchedBenchMetric, f: SchedBenchRun): number {
  if (metric === 'throughput') {
    if (f.workUnitsPerSec <= 0) throw new KtstrError('schedBench: the run did no work units; give its cgroups workers (cgroup(name).workers(n, work.spin()))')
    return 1e9 / f.workUnitsPerSec
  }
  if (f.wakeups === 0) {
    throw new KtstrError(`schedBench: metric ${metric} needs wake-ups, and this run had none; use work types that block (work.pipe(), work.futex(), work.bursty(), work.ioSync())`)
  }
  // At least 1 ns, so hz stays finite.
  return Math.max(1e-3, metric === 'wakeLatencyP50' ? f.wakeLatencyP50Us : f.wakeLatencyP99Us)
}

/** The figures of one run: of all its workloads, or of one cgroup's. */
export function measure(r: Report, cgroup?: string): SchedBenchRun {
  const workers = cgroup === undefined ? r.workers : r.cgroup(cgroup).workers
  const workUnits = workers.reduce((n, w) => n + w.workUnits, 0)
  const latencies = workers.flatMap((w) => w.wakeLatencyNs)
  const wall = workers.reduce((n, w) => n + w.wallTimeNs, 0)
  return {
    scheduler: r.scheduler.name,
    durationMs: r.durationMs,
    workUnits,
    // Each workload's own rate (its wall time), summed: start skew between workloads does not count.
    workUnitsPerSec: workers.reduce((n, w) => n + (w.wallTimeNs > 0 ? (w.workUnits * 1e9) / w.wallTimeNs : 0), 0),
    wakeups: workers.reduce((n, w) => n + w.wakeSamples, 0),
    wakeLatencyP50Us: percentile(latencies, 0.5) / 1e3,
    wakeLatencyP99Us: percentile(latencies, 0.99) / 1e3,
    runDelayPct: wall > 0 ? (100 * workers.reduce((n, w) => n + w.runDelayNs, 0)) / wall : 0,
  }
}

function count(n: number, name: string, min: number): number {
  if (!Number.isInteger(n) || n < min) throw new KtstrError(`schedBench: ${name} must be an integer >= ${min}, got ${n}`)
  return n
}
