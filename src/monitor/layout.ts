/**
 * Where the fields the monitor samples lie, resolved once from the guest kernel's BTF. A kernel
 * that lacks one (another version, another config) turns the monitor off with one line naming it.
 */
import { type Btf, BtfError } from './btf/index.js'

export interface Layout {
  /** `.data..percpu` offset of `runqueues` (struct rq). */
  readonly runqueues: number
  /** `.data..percpu` offset of `pcpu_hot.current_task`. */
  readonly currentTask: number
  readonly rq: {
    readonly nrRunning: number
    readonly clock: number
    readonly curr: number
    readonly scxNrRunning: number
    readonly localDsqNr: number
    readonly runnableList: number
  }
  readonly task: {
    readonly pid: number
    readonly comm: number
    readonly commLen: number
    readonly policy: number
    readonly runnableAt: number
    readonly runnableNode: number
    /** task_struct.active_mm; undefined when absent (vmalloc reads then fail). */
    readonly activeMm: number | undefined
  }
  /** mm_struct.pgd; undefined when absent. */
  readonly mmPgd: number | undefined
  /** Why there are no sched_ext event counters (kernels before 6.15); undefined when there are. */
  readonly eventsNote: string | undefined
}

export type LayoutResult = { ok: true; layout: Layout } | { ok: false; reason: string }

/** Each field of the sample, or the one line that says which is missing. */
export function resolveLayout(btf: Btf): LayoutResult {
  let what = ''
  /** Offset of `path` in struct `outer`, checking its size when given. */
  const at = (outer: string, path: string, size?: number): number => {
    what = `struct ${outer} has no ${path}`
    const m = btf.member(outer, path)
    if (size !== undefined && btf.sizeOf(m.type) !== size) throw new BtfError(`struct ${outer}.${path} is ${btf.sizeOf(m.type)} bytes, not ${size}`)
    return m.offset
  }
  const optional = (outer: string, path: string): number | undefined => {
    try {
      return btf.member(outer, path).offset
    } catch (e) {
      if (e instanceof BtfError) return undefined
      throw e
    }
  }
  try {
    what = "per-CPU variable 'runqueues'"
    const runqueues = btf.percpuVar('runqueues').offset
    what = "per-CPU variable 'pcpu_hot'"
    const hot = btf.percpuVar('pcpu_hot')
    const currentTask = hot.offset + at('pcpu_hot', 'current_task', 8)
    const rq = {
      nrRunning: at('rq', 'nr_running', 4),
      clock: at('rq', 'clock', 8),
      curr: at('rq', 'curr', 8),
      scxNrRunning: at('rq', 'scx.nr_running', 4),
      localDsqNr: at('rq', 'scx.local_dsq.nr', 4),
      runnableList: at('rq', 'scx.runnable_list', 16),
    }
    const task = {
      pid: at('task_struct', 'pid', 4),
      comm: at('task_struct', 'comm'),
      commLen: 0,
      policy: at('task_struct', 'policy', 4),
      runnableAt: at('task_struct', 'scx.runnable_at', 8),
      runnableNode: at('task_struct', 'scx.runnable_node', 16),
      activeMm: optional('task_struct', 'active_mm'),
    }
    task.commLen = btf.sizeOf(btf.member('task_struct', 'comm').type)
    const events = btf.byName('scx_event_stats', 'STRUCT').length > 0
    return {
      ok: true,
      layout: {
        runqueues,
        currentTask,
        rq,
        task,
        mmPgd: optional('mm_struct', 'pgd'),
        eventsNote: events ? undefined : 'no sched_ext event counters: this kernel has none (they came in Linux 6.15)',
      },
    }
  } catch (e) {
    if (!(e instanceof BtfError)) throw e
    return { ok: false, reason: `the guest kernel's BTF does not fit the monitor: ${what} (${e.message})` }
  }
}
