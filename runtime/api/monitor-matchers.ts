/**
 * Matchers over the host monitor's samples — `toHaveNoStalls()`, `toKeepLocalDsqBelow(n)`,
 * `toBeBalanced({ maxImbalance })` on a report (`r.monitor`), a window or samples — and over BPF
 * counters sampled with `monitor.counters()`: `toBeNonDecreasing()`, `toBeSteadyWithin({ bandPct })`.
 * Registered with the other ktstr matchers (matchers.ts).
 */

import type { MonitorWindow } from '../protocol/monitor.js'
import type { CheckResult } from './checks.js'
import { checkBalanced, checkLocalDsqBelow, checkNonDecreasing, checkNoStalls, checkSteady, isCounterSeries, windowOf } from './monitor-checks.js'

export interface KtstrMonitorMatchers<R = unknown> {
  /** The host's stall watchdog saw no stall in the window, and no idle CPU's rq clock stood still with tasks runnable. */
  toHaveNoStalls(): R
  /** Every CPU's sched_ext local DSQ held fewer than `n` tasks in every sample. */
  toKeepLocalDsqBelow(n: number): R
  /** Per-CPU mean nr_running differs by at most `maxImbalance` tasks (default 1) between the busiest and idlest CPU. */
  toBeBalanced(opts?: { maxImbalance?: number }): R
  /** Every counter of a `monitor.counters()` series never went down. */
  toBeNonDecreasing(): R
  /** Every counter's rate between points stays within ±`bandPct` % (default 50) of its median rate. */
  toBeSteadyWithin(opts?: { bandPct?: number }): R
}

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: the declaration merges with Vitest's Matchers<T = any>
  interface Matchers<T = any> extends KtstrMonitorMatchers<T> {}
}

interface Ctx {
  isNot?: boolean
}
const MAX_LINES = 8

function verdict(ctx: Ctx, name: string, r: CheckResult) {
  return {
    pass: r.pass,
    message: () => {
      if (ctx.isNot) return `expected ${name} to fail, but it passed: ${r.summary}`
      const lines = r.failures.slice(0, MAX_LINES)
      if (r.failures.length > MAX_LINES) lines.push(`… and ${r.failures.length - MAX_LINES} more`)
      return `${name} failed:\n  ${lines.join('\n  ')}`
    },
  }
}

function onWindow(ctx: Ctx, name: string, received: unknown, check: (w: MonitorWindow) => CheckResult) {
  const w = windowOf(received)
  if (typeof w === 'string') return { pass: false, message: () => `${name}: ${w}` }
  return verdict(ctx, name, check(w))
}

function onSeries(ctx: Ctx, name: string, received: unknown, check: (s: Parameters<typeof checkSteady>[0]) => CheckResult) {
  if (!isCounterSeries(received)) return { pass: false, message: () => `${name}: expected the series from (await monitor.counters([...]).stop()), got ${typeof received}` }
  return verdict(ctx, name, check(received))
}

export const monitorMatchers = {
  toHaveNoStalls(this: Ctx, received: unknown) {
    return onWindow(this, 'toHaveNoStalls', received, checkNoStalls)
  },
  toKeepLocalDsqBelow(this: Ctx, received: unknown, n: number) {
    if (typeof n !== 'number' || !(n > 0)) return { pass: false, message: () => `toKeepLocalDsqBelow(n) needs a task count above 0, got ${String(n)}` }
    return onWindow(this, 'toKeepLocalDsqBelow', received, (w) => checkLocalDsqBelow(w, n))
  },
  toBeBalanced(this: Ctx, received: unknown, opts?: { maxImbalance?: number }) {
    const max = opts?.maxImbalance ?? 1
    if (!(max >= 0)) return { pass: false, message: () => `toBeBalanced({ maxImbalance }) needs a number of tasks ≥ 0, got ${String(opts?.maxImbalance)}` }
    return onWindow(this, 'toBeBalanced', received, (w) => checkBalanced(w, max))
  },
  toBeNonDecreasing(this: Ctx, received: unknown) {
    return onSeries(this, 'toBeNonDecreasing', received, checkNonDecreasing)
  },
  toBeSteadyWithin(this: Ctx, received: unknown, opts?: { bandPct?: number }) {
    const band = opts?.bandPct ?? 50
    if (!(band > 0)) return { pass: false, message: () => `toBeSteadyWithin({ bandPct }) needs a percentage above 0, got ${String(opts?.bandPct)}` }
    return onSeries(this, 'toBeSteadyWithin', received, (s) => checkSteady(s, band))
  },
}
