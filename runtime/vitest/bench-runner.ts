/**
 * Vitest's benchmark runner for sched projects (`vitest bench`; the plugin sets it as the project's
 * `runner` unless the project has its own). It is Vitest's BenchmarkRunner, plus one check: a
 * `*.sched.bench.ts` file whose benchmarks Vitest would not run — none at all, or only `test()`s,
 * which benchmark mode skips without a word — fails with one line saying what to add.
 */
import path from 'node:path'
import { BenchmarkRunner, type RunnerTask, type RunnerTestFile } from 'vitest'

export default class KtstrBenchmarkRunner extends BenchmarkRunner {
  onCollected(files: RunnerTestFile[]): void {
    for (const file of files) {
      if (file.result?.errors?.length || hasBench(file)) continue // a collection error says more
      const name = path.basename(file.filepath)
      const message = `${name} has no bench(): a *.sched.bench.ts file runs under \`vitest bench\`; add bench('name', ...schedBench({ duration, cgroups })) from 'ktstr', or rename it to *.sched.test.ts if it holds tests`
      file.result = { state: 'fail', errors: [{ name: 'KtstrError', message, stack: '' }] }
    }
  }
}

function hasBench(task: RunnerTask): boolean {
  if (task.meta?.benchmark) return true
  return 'tasks' in task && task.tasks.some(hasBench)
}
