/**
 * BPF counters sampled over a run: the attached scheduler's globals, read by the host every
 * `everyMs`, kept as one series per name for the counter matchers.
 */
import { KtstrError } from '../protocol/errors.js'
import type { BpfValue } from '../protocol/monitor.js'
import { ask } from './monitor-bridge.js'

export interface CounterSeries {
  readonly names: readonly string[]
  /** Guest-monotonic ms since the first point, and each counter's value then. */
  readonly points: readonly { atMs: number; values: Record<string, number> }[]
  /** One counter's values, in order. */
  values(name: string): number[]
}

export interface CounterTrack {
  /** Stop sampling (after one last point) and give the series; rejects with the host's line if a read failed. */
  stop(): Promise<CounterSeries>
}

/** `name` in the globals: a dotted path (`bss.nr_enqueued`), or a bare name looked up in each section. */
export function counterValue(globals: BpfValue, name: string): number {
  const path = name.split('.')
  const at = (v: BpfValue | undefined, p: string[]): BpfValue | undefined => p.reduce<BpfValue | undefined>((o, k) => (isRecord(o) ? o[k] : undefined), v)
  let v = at(globals, path)
  if (v === undefined && isRecord(globals)) {
    for (const section of Object.values(globals)) if ((v = at(section, path)) !== undefined) break
  }
  if (typeof v === 'bigint') return Number(v)
  if (typeof v === 'number') return v
  if (typeof v === 'boolean') return Number(v)
  throw new KtstrError(`monitor.counters(): no numeric global "${name}" in the scheduler's globals; it has ${describeNames(globals)}`)
}

function isRecord(v: BpfValue | undefined): v is { [member: string]: BpfValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function describeNames(globals: BpfValue): string {
  if (!isRecord(globals)) return 'none'
  const names = Object.entries(globals).flatMap(([k, v]) => (isRecord(v) ? Object.keys(v).map((n) => `${k}.${n}`) : [k]))
  return names.length > 20 ? `${names.slice(0, 20).join(', ')}, … (${names.length})` : names.join(', ') || 'none'
}

export function seriesOf(names: readonly string[], points: CounterSeries['points']): CounterSeries {
  return {
    names,
    points,
    values(name) {
      if (!names.includes(name)) throw new KtstrError(`no counter "${name}" in this series; it has ${names.join(', ')}`)
      return points.map((p) => p.values[name]!)
    },
  }
}

export function trackCounters(names: readonly string[], everyMs: number): CounterTrack {
  if (names.length === 0) throw new KtstrError('monitor.counters(names) needs at least one global name, e.g. monitor.counters(["nr_enqueued"])')
  if (!(everyMs >= 10)) throw new KtstrError(`monitor.counters(): everyMs must be at least 10, got ${everyMs}`)
  const points: { atMs: number; values: Record<string, number> }[] = []
  const t0 = performance.now()
  let error: unknown
  let pending: Promise<void> = Promise.resolve()
  const take = () =>
    (pending = pending.then(async () => {
      if (error) return
      try {
        const globals = await ask<BpfValue>({ op: 'globals' }, 'monitor.counters()')
        const at = Math.round(performance.now() - t0)
        points.push({ atMs: at, values: Object.fromEntries(names.map((n) => [n, counterValue(globals, n)])) })
      } catch (e) {
        error = e
      }
    }))
  take()
  const timer = setInterval(take, everyMs)
  return {
    async stop() {
      clearInterval(timer)
      await take()
      if (error) throw error
      return seriesOf(names, points)
    },
  }
}
