/** Checks over the host monitor's per-CPU samples and BPF counter series (the monitor matchers use them). */
import type { MonitorSample, MonitorWindow } from '../protocol/monitor.js'
import type { CheckResult } from './checks.js'
import type { CounterSeries } from './monitor-counters.js'

/** A report's window, a window, or samples; a string is why there are none (the monitor is off). */
export function windowOf(received: unknown): MonitorWindow | string {
  if (Array.isArray(received)) return { hz: 0, samples: received as MonitorSample[], stalls: [] }
  if (received && typeof received === 'object') {
    if ('samples' in received && 'stalls' in received) return received as MonitorWindow
    if ('monitor' in received) {
      try {
        return windowOf((received as { monitor: unknown }).monitor)
      } catch (e) {
        return e instanceof Error ? e.message : String(e)
      }
    }
  }
  return `expected a run report, r.monitor or monitor samples, got ${received === null ? 'null' : typeof received}`
}

const result = (failures: string[], summary: string): CheckResult => ({ pass: failures.length === 0, failures, summary })
const at = (s: MonitorSample) => `at ${(s.atMs / 1000).toFixed(1)} s`

/**
 * The watchdog's stall lines, and any CPU idle in two samples in a row (its current task the idle
 * task) whose rq clock stood still between them with tasks runnable: queued work nothing picks. A
 * busy CPU's still clock means interrupts were off, not a scheduler stall (as the host's watchdog).
 */
export function checkNoStalls(w: MonitorWindow): CheckResult {
  const failures = [...w.stalls]
  for (let i = 1; i < w.samples.length; i++) {
    const prev = w.samples[i - 1]!
    for (const c of w.samples[i]!.cpus) {
      const p = prev.cpus.find((x) => x.cpu === c.cpu)
      const idle = c.curr?.pid === 0 && p?.curr?.pid === 0
      if (idle && p?.clockNs !== undefined && c.clockNs === p.clockNs && c.nrRunning > 0 && p.nrRunning > 0) {
        failures.push(`CPU ${c.cpu}: idle, rq clock stood still ${at(prev)}–${at(w.samples[i]!).slice(3)} with ${c.nrRunning} runnable`)
      }
    }
  }
  return result(failures, `${w.samples.length} samples, ${w.stalls.length} watchdog stalls`)
}

export function checkLocalDsqBelow(w: MonitorWindow, n: number): CheckResult {
  const failures: string[] = []
  let max = 0
  for (const s of w.samples) {
    for (const c of s.cpus) {
      max = Math.max(max, c.localDsq ?? 0)
      if ((c.localDsq ?? 0) >= n) failures.push(`CPU ${c.cpu} had ${c.localDsq} tasks on its local DSQ ${at(s)}`)
    }
  }
  if (w.samples.length === 0) failures.push('no monitor samples in the window')
  return result(failures, `largest local DSQ ${max} over ${w.samples.length} samples`)
}

/** Each CPU's mean nr_running over the window; the spread (max − min) is the imbalance, in tasks. */
export function checkBalanced(w: MonitorWindow, maxImbalance: number): CheckResult {
  const sums = new Map<number, { sum: number; n: number }>()
  for (const s of w.samples) {
    for (const c of s.cpus) {
      const e = sums.get(c.cpu) ?? { sum: 0, n: 0 }
      e.sum += c.nrRunning
      e.n++
      sums.set(c.cpu, e)
    }
  }
  const means = [...sums].map(([cpu, e]) => ({ cpu, mean: e.sum / e.n })).sort((a, b) => a.mean - b.mean)
  if (means.length === 0) return result(['no monitor samples in the window'], 'no samples')
  const lo = means[0]!
  const hi = means.at(-1)!
  const spread = hi.mean - lo.mean
  const line = `CPU ${hi.cpu} ran ${hi.mean.toFixed(2)} tasks on average, CPU ${lo.cpu} ${lo.mean.toFixed(2)}: imbalance ${spread.toFixed(2)}`
  return result(spread > maxImbalance ? [`${line} > ${maxImbalance}`] : [], line)
}

export function checkNonDecreasing(s: CounterSeries): CheckResult {
  const failures: string[] = []
  for (const name of s.names) {
    const v = s.values(name)
    const i = v.findIndex((x, k) => k > 0 && x < v[k - 1]!)
    if (i > 0) failures.push(`${name} went down from ${v[i - 1]} to ${v[i]} at ${s.points[i]!.atMs} ms`)
  }
  if (s.points.length < 2) failures.push(`only ${s.points.length} point(s): sample over a longer run or more often`)
  return result(failures, `${s.names.join(', ')} over ${s.points.length} points`)
}

/** Each counter's rate between points stays within ±bandPct % of its median rate. */
export function checkSteady(s: CounterSeries, bandPct: number): CheckResult {
  const failures: string[] = []
  if (s.points.length < 3) failures.push(`only ${s.points.length} point(s): a steady rate needs at least 3`)
  for (const name of s.names) {
    const v = s.values(name)
    const rates = v.slice(1).map((x, k) => (x - v[k]!) / Math.max(1, s.points[k + 1]!.atMs - s.points[k]!.atMs))
    const sorted = [...rates].sort((a, b) => a - b)
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0
    const worst = rates.reduce((w, r, k) => (Math.abs(r - median) > Math.abs(rates[w]! - median) ? k : w), 0)
    const off = median === 0 ? (rates[worst] === 0 ? 0 : Infinity) : (Math.abs(rates[worst]! - median) / Math.abs(median)) * 100
    if (rates.length > 0 && off > bandPct) {
      failures.push(
        `${name}: ${(rates[worst]! * 1000).toFixed(1)}/s at ${s.points[worst + 1]!.atMs} ms is ${off.toFixed(0)}% off its median ${(median * 1000).toFixed(1)}/s (band ±${bandPct}%)`,
      )
    }
  }
  return result(failures, `${s.names.join(', ')} steady within ±${bandPct}%`)
}

export function isCounterSeries(x: unknown): x is CounterSeries {
  return typeof x === 'object' && x !== null && Array.isArray((x as CounterSeries).names) && Array.isArray((x as CounterSeries).points)
}
