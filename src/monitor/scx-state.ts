/**
 * Which sched_ext scheduler is attached, for the monitor's samples, status and dumps. The kernel
 * keeps this in globals (scx_ops_enable_state_var, scx_ops.name), but the host has no address for
 * them: BTF gives types, not addresses, and a kernel without CONFIG_KALLSYMS_ALL lists no data
 * symbols. The attached scheduler's struct_ops map is reachable without symbols (the guest's fd
 * tables, from init_task: src/monitor/bpf/struct-ops.ts), so it is what names the ops. The walk
 * costs milliseconds, so the Monitor refreshes it about once a second (and on demand).
 */
import type { ScxState } from '../../runtime/protocol/monitor.js'
import { attachedScheduler } from './bpf/struct-ops.js'
import type { KernelView } from './kernel-view.js'

export type { ScxState }

/** How often the Monitor reads it again, ms of host time. */
export const SCX_REFRESH_MS = 1000

export function readScxState(view: KernelView): ScxState {
  const s = attachedScheduler(view)
  return s ? { state: 'attached', ops: s.name } : { state: 'none' }
}

/** One line: `qmap attached`, `none attached`. */
export const describeScx = (s: ScxState): string => (s.state === 'attached' ? `${s.ops} attached` : 'none attached')
