/**
 * `monitor`: the host's view of the guest kernel, per CPU (run queues, sched_ext's local DSQ, the
 * current task), sampled by the host at the file's `monitor-hz=` while the file runs. The guest only
 * asks; the host reads guest memory and answers. When the monitor is off (a kernel without BTF, …)
 * every call rejects with the one-line reason.
 *
 *   const s = await monitor.sample()            // newest sample: s.cpus[1].nrRunning
 *   const r = await run({ ... }); r.monitor     // the samples in the run's window
 */
import { KtstrError } from '../protocol/errors.js'
import type { MonitorSample, MonitorStatus, MonitorWindow } from '../protocol/monitor.js'
import { ask, bridge } from './monitor-bridge.js'
import { type CounterTrack, trackCounters } from './monitor-counters.js'

export type { CounterSeries, CounterTrack } from './monitor-counters.js'

/** A mark on the host monitor's clock, or why there is no window to ask for. */
export type MonitorMark = { at: number } | { off: string }

export const monitor = {
  /** On with its rate, or off with the reason. Never rejects inside a ktstr guest. */
  status: (): Promise<MonitorStatus> => ask<MonitorStatus>({ op: 'status' }, 'monitor.status()'),
  /** The newest per-CPU sample the host took. */
  sample: (): Promise<MonitorSample> => ask<MonitorSample>({ op: 'sample' }, 'monitor.sample()'),
  /** A point on the host monitor's clock; `since(mark)` gives the samples from it to now. */
  mark: async (): Promise<MonitorMark> => {
    try {
      return { at: await ask<number>({ op: 'mark' }, 'monitor.mark()') }
    } catch (e) {
      return { off: e instanceof Error ? e.message : String(e) }
    }
  },
  /** The samples (and the watchdog's stall lines) from `mark` to now. */
  since: (mark: MonitorMark): Promise<MonitorWindow> => {
    if ('off' in mark) return Promise.reject(new KtstrError(mark.off))
    return ask<MonitorWindow>({ op: 'window', from: mark.at }, 'monitor.since()')
  },
  /**
   * Sample the attached scheduler's BPF globals (`'nr_enqueued'`, `'bss.nr_dispatched'`) every
   * `everyMs` (default 250) until `stop()`, which gives the series for `toBeNonDecreasing()` and
   * `toBeSteadyWithin({ bandPct })`.
   */
  counters: (names: readonly string[], opts: { everyMs?: number } = {}): CounterTrack => trackCounters(names, opts.everyMs ?? 250),
}

/** The run's window for its report, or why there is none; never throws (a run does not need the monitor). */
export async function runWindow(mark: MonitorMark | undefined): Promise<MonitorWindow | { off: string } | undefined> {
  if (!mark || !bridge()) return undefined
  if ('off' in mark) return mark
  try {
    return await monitor.since(mark)
  } catch (e) {
    return { off: e instanceof Error ? e.message : String(e) }
  }
}
