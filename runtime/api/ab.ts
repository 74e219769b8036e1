/**
 * A/B against EEVDF inside one guest: run the scenario under the kernel's default scheduler (the
 * baseline), attach the scheduler under test, run the same scenario again, and compare a metric
 * (the shape of scx's mitosis isolation check: ">= 1.3x its EEVDF iterations").
 *
 * The baseline needs EEVDF, so the file itself must run without a host-attached scheduler; ab()
 * starts and stops the scheduler binary (which must be in the guest, e.g. `--include`).
 */
import { KtstrError } from '../protocol/errors.js'
import type { Report } from './report.js'
import { type RunOptions, run } from './run.js'
import { currentScheduler, startScheduler } from './scheduler.js'

export interface AbOptions {
  scenario: RunOptions
  /** The number compared, e.g. `r => r.cgroup('a').workUnits`. */
  metric: (r: Report) => number
  /** Guest path of the sched_ext scheduler binary for the B run. */
  scheduler: string
  schedulerArgs?: string[]
}

export interface AbResult {
  scheduler: string
  /** Metric under EEVDF and under the scheduler. */
  baseline: number
  candidate: number
  /** candidate / baseline (Infinity when the baseline is 0 and the candidate is not). */
  ratio: number
  baselineReport: Report
  candidateReport: Report
}

export function ratioOf(baseline: number, candidate: number): number {
  if (baseline === 0) return candidate === 0 ? 1 : Infinity
  return candidate / baseline
}

export async function ab(opts: AbOptions): Promise<AbResult> {
  const now = currentScheduler()
  if (now.kind !== 'eevdf') {
    throw new KtstrError(
      `ab() needs EEVDF for its baseline, but ${now.name} is attached for this file; run the file without a scheduler and pass ab({ scheduler: '<path of ${now.name}>' }) with the binary included in the guest`,
    )
  }
  const baselineReport = await run(opts.scenario)
  const handle = await startScheduler(opts.scheduler, { args: opts.schedulerArgs ?? [] })
  let candidateReport: Report
  try {
    candidateReport = await run(opts.scenario)
  } finally {
    await handle.stop()
  }
  const baseline = opts.metric(baselineReport)
  const candidate = opts.metric(candidateReport)
  return { scheduler: handle.name, baseline, candidate, ratio: ratioOf(baseline, candidate), baselineReport, candidateReport }
}
