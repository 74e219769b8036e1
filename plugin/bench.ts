/**
 * `vitest bench` with a ktstr project: `*.sched.bench.ts` files are the sched project's benchmarks
 * (each boots its guest like a sched test file), and no other project picks them up, so a `unit`
 * project on Vitest's own pool never runs a scheduler benchmark on the host.
 */
import path from 'node:path'
import { inspect } from 'node:util'
import type { TestProject } from 'vitest/node'
import { KtstrError } from '../src/util/errors.js'
import { packageRoot } from '../src/util/paths.js'

export const SCHED_BENCH_GLOB = '**/*.sched.bench.ts'
/** Vitest's own `benchmark.include` default (not exported by Vitest). */
const VITEST_BENCH_INCLUDE = ['**/*.{bench,benchmark}.?(c|m)[jt]s?(x)']

/** Vitest's test reporters: benchmark mode has none of them (only default and verbose) and fails at startup with a stack. */
const TEST_ONLY_REPORTERS = ['json', 'junit', 'blob', 'tap', 'tap-flat', 'dot', 'tree', 'minimal', 'agent', 'github-actions', 'hanging-process']

/** In benchmark mode Vitest globs `include`/`exclude`, copied from `benchmark.include`/`exclude`. */
export function routeSchedBenches(project: TestProject, isKtstrProject: boolean): void {
  const config = project.config
  if (config.mode !== 'benchmark') return
  assertBenchReporters(project)
  if (!isKtstrProject) {
    if (!config.exclude.includes(SCHED_BENCH_GLOB)) config.exclude = [...config.exclude, SCHED_BENCH_GLOB]
    return
  }
  // A file with no bench() fails with one line naming the fix (runtime/vitest/bench-runner.ts).
  config.runner ??= path.join(packageRoot(), 'dist', 'runtime', 'vitest', 'bench-runner.js')
  // Left at Vitest's default, a sched project would boot a guest for every `*.bench.ts`: it takes the sched ones only.
  const isDefault = config.include.length === 1 && config.include[0] === VITEST_BENCH_INCLUDE[0]
  if (isDefault) config.include = [SCHED_BENCH_GLOB]
  else if (!config.include.includes(SCHED_BENCH_GLOB)) config.include = [...config.include, SCHED_BENCH_GLOB]
}

/** `vitest bench --reporter=json` (or junit, blob ...): one line naming the fix instead of Vitest's startup stack. */
function assertBenchReporters(project: TestProject): void {
  for (const r of [project.vitest.config.benchmark?.reporters ?? []].flat()) {
    const name = typeof r === 'string' ? r : undefined
    if (!name || !TEST_ONLY_REPORTERS.includes(name)) continue
    const e = new KtstrError(
      `\`vitest bench\` has no "${name}" reporter (benchmark mode has default and verbose): drop --reporter=${name}; --outputJson <file> writes the results as JSON`,
    )
    // Vitest prints a startup error with util.inspect: show the one line, not a stack.
    Object.defineProperty(e, inspect.custom, { value: () => `${e.name}: ${e.message}` })
    throw e
  }
}
