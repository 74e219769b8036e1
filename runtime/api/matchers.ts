/**
 * Vitest matchers over run reports: `expect(r).toHaveNoStarvation()`, `toHaveMaxGapBelow(ms)`,
 * `toBeFairWithin({ spreadPct })`, `toStayInCpuset()`, `toKeepSchedulerAttached()`. Each accepts the
 * report, `r.cgroup(name)`, or workload telemetry. The ktstr pool's guest bootstrap (runtime/vitest/worker.ts)
 * registers them for every sched test file; elsewhere call `registerMatchers(expect)`.
 */
import { type Checkable, type CheckResult, checkCpuset, checkFairness, checkMaxGap, checkScheduler, checkStarvation, isCheckable, workersOf } from './checks.js'
import { monitorMatchers } from './monitor-matchers.js'
import type { SchedulerState, WorkerSet } from './report.js'

export interface KtstrMatchers<R = unknown> {
  /** Every workload did work and none waited `maxGapMs` (default 2000) or more between checkpoints. */
  toHaveNoStarvation(opts?: { maxGapMs?: number }): R
  /** Every workload's longest gap between work checkpoints is below `ms`. */
  toHaveMaxGapBelow(ms: number): R
  /** Within each cgroup, the off-CPU% spread (max − min) is below `spreadPct` points (default 15). */
  toBeFairWithin(opts?: { spreadPct?: number }): R
  /** No workload was seen on a CPU its cgroup's cpuset did not allow at the time. */
  toStayInCpuset(opts?: { graceMs?: number }): R
  /** The sched_ext scheduler was attached at the start and stayed attached to the end. */
  toKeepSchedulerAttached(): R
}

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-explicit-any
  // biome-ignore lint/suspicious/noExplicitAny: the declaration merges with Vitest's Matchers<T = any>
  interface Matchers<T = any> extends KtstrMatchers<T> {}
}

interface MatcherContext {
  isNot?: boolean
}

interface MatcherResult {
  pass: boolean
  message: () => string
}

const MAX_LINES = 12

function label(x: Checkable): string {
  return !Array.isArray(x) && typeof (x as WorkerSet).label === 'string' ? (x as WorkerSet).label! : `${workersOf(x).length} workers`
}

function verdict(ctx: MatcherContext, name: string, received: unknown, check: (c: Checkable) => CheckResult): MatcherResult {
  if (!isCheckable(received)) {
    return { pass: false, message: () => `${name}: expected a ktstr run report, r.cgroup(name) or worker telemetry, got ${typeof received}` }
  }
  const r = check(received)
  return {
    pass: r.pass,
    message: () => {
      if (ctx.isNot) return `expected ${name} to fail for ${label(received)}, but it passed: ${r.summary}`
      const lines = r.failures.slice(0, MAX_LINES)
      if (r.failures.length > MAX_LINES) lines.push(`… and ${r.failures.length - MAX_LINES} more`)
      return `${name} failed for ${label(received)}:\n  ${lines.join('\n  ')}`
    },
  }
}

function schedulerOf(received: unknown): SchedulerState | undefined {
  if (received && typeof received === 'object') {
    if ('scheduler' in received) return (received as { scheduler?: SchedulerState }).scheduler
    if ('kind' in received && 'attached' in received) return received as SchedulerState
  }
  return undefined
}

export const matchers = {
  toHaveNoStarvation(this: MatcherContext, received: unknown, opts?: { maxGapMs?: number }): MatcherResult {
    return verdict(this, 'toHaveNoStarvation', received, (c) => checkStarvation(c, opts))
  },
  toHaveMaxGapBelow(this: MatcherContext, received: unknown, ms: number): MatcherResult {
    if (typeof ms !== 'number' || !(ms > 0)) return { pass: false, message: () => `toHaveMaxGapBelow(ms) needs a limit in milliseconds above 0, got ${String(ms)}` }
    return verdict(this, 'toHaveMaxGapBelow', received, (c) => checkMaxGap(c, ms))
  },
  toBeFairWithin(this: MatcherContext, received: unknown, opts?: { spreadPct?: number }): MatcherResult {
    return verdict(this, 'toBeFairWithin', received, (c) => checkFairness(c, opts))
  },
  toStayInCpuset(this: MatcherContext, received: unknown, opts?: { graceMs?: number }): MatcherResult {
    return verdict(this, 'toStayInCpuset', received, (c) => checkCpuset(c, opts))
  },
  toKeepSchedulerAttached(this: MatcherContext, received: unknown): MatcherResult {
    const r = checkScheduler(schedulerOf(received))
    return {
      pass: r.pass,
      message: () => (this.isNot ? `expected the scheduler to detach, but: ${r.summary}` : `toKeepSchedulerAttached failed: ${r.failures.join('; ')}`),
    }
  },
}

export interface Extendable {
  // biome-ignore lint/suspicious/noExplicitAny: the shape of Vitest's expect.extend
  extend(matchers: Record<string, (...args: any[]) => any>): void
}

export function registerMatchers(expect: Extendable): void {
  expect.extend({ ...matchers, ...monitorMatchers })
}
