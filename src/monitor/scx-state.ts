/**
 * Which sched_ext scheduler is attached, for the monitor's samples, status and dumps. The kernel
 * keeps this in globals (scx_ops_enable_state_var, scx_ops.name), but the host has no address for
 * them: BTF gives types, not addresses, and a kernel without CONFIG_KALLSYMS_ALL lists no data
 * symbols. The attached scheduler's struct_ops map is reachable without symbols (the guest's fd
 * tables, from init_task: src/monitor/bpf/struct-ops.ts), so it is what names the ops. The walk
 * costs milliseconds, so the Monitor refreshes it about once a second (and on demand).
 *
 * The link's fd is installed only after sched_ext's enable returns (bpf_struct_ops_link_create:
 * ops.reg, then bpf_link_settle), and the loader may block in between: under scx_qmap -t 2 it can be
 * one of the tasks the scheduler stalls, its link then never seen. The tasks say it instead:
 * sched_ext moves every task past SCX_TASK_NONE (task->scx.flags) while a scheduler is in, and back
 * to NONE when it is disabled; the ops are then named by the one sched_ext struct_ops map loaded.
 */
import type { ScxState } from '../../runtime/protocol/monitor.js'
import { off, u32 } from './bpf/kmem.js'
import { findBpfObjects } from './bpf/maps.js'
import { attachedScheduler, structOpsMaps } from './bpf/struct-ops.js'
import { walkTasks } from './bpf/tasks.js'
import type { KernelView } from './kernel-view.js'

export type { ScxState }

/** How often the Monitor reads it again, ms of host time. */
export const SCX_REFRESH_MS = 1000

/**
 * Read now. 'none' only from a walk that saw every process: a torn one (findBpfObjects) throws, so
 * the Monitor keeps what it last read rather than report a scheduler gone that is still attached.
 */
export function readScxState(view: KernelView): ScxState {
  const objs = findBpfObjects(view)
  const s = attachedScheduler(view, objs)
  if (s) return { state: 'attached', ops: s.name }
  if (tasksInSchedExt(view)) {
    const loaded = structOpsMaps(view, objs).filter((m) => m.ops === 'sched_ext_ops')
    if (loaded.length === 1) return { state: 'attached', ops: loaded[0]!.name }
    throw new Error(`sched_ext has a scheduler in, and ${loaded.length} sched_ext struct_ops maps are loaded: which one is not known`)
  }
  if (!objs.complete) throw new Error('the guest changed its task list under every walk; no struct_ops link seen')
  return { state: 'none' }
}

/** Tasks looked at for their sched_ext state. */
const STATE_SAMPLE = 32

/** Whether some task (not an idle one) has a sched_ext state past NONE; false without sched_ext. */
export function tasksInSchedExt(view: KernelView): boolean {
  const { btf } = view
  const shift = btf.enumValue('scx_ent_flags', 'SCX_TASK_STATE_SHIFT')
  const mask = btf.enumValue('scx_ent_flags', 'SCX_TASK_STATE_MASK')
  if (shift === undefined || mask === undefined) return false
  const flags = BigInt(off(btf, 'task_struct', 'scx.flags'))
  for (const t of walkTasks(view, { max: STATE_SAMPLE })) {
    if (t.pid === 0) continue
    const f = u32(view, t.addr + flags)
    if (f !== undefined && (f & mask) >>> shift !== 0) return true
  }
  return false
}

/** One line: `qmap attached`, `none attached`. */
export const describeScx = (s: ScxState): string => (s.state === 'attached' ? `${s.ops} attached` : 'none attached')
