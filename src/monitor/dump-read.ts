/**
 * The guest's BPF maps and the attached scheduler's globals, decoded for a failure dump within a
 * time budget: the Monitor takes them just before the VM is killed (a stall) and the dump reads
 * them live when the guest is still there. Each map or section that cannot be read says why.
 */
import type * as wire from '../../runtime/protocol/monitor.js'
import { describeError } from '../util/errors.js'
import { type BpfMapInfo, findBpfObjects, READABLE_TYPES, readMap } from './bpf/index.js'
import type { KernelView } from './kernel-view.js'
import { bpfGlobals } from './serve-globals.js'

/** Elements read per map. */
const DUMP_MAP_MAX = 1024
/** How long a dump may spend reading the maps (the guest may be wedged; the VM waits to be killed). */
export const DUMP_READ_BUDGET_MS = 1000

export type DumpMaps = { info: wire.BpfMapInfo; entries?: unknown[]; truncated?: boolean; error?: string }[] | { notRead: string }

export interface SchedulerSnapshot {
  maps: DumpMaps
  /** By section (`bss`, `data`, `rodata`), or `{ error }`. */
  globals: unknown
}

export function mapToWire(m: BpfMapInfo): wire.BpfMapInfo {
  return { name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, owner: `${m.owner.comm}[${m.owner.pid}]` }
}

/** Every map (the readable ones decoded) and the scheduler's globals, giving up on what is left after `budgetMs`. */
export function readSchedulerState(view: KernelView, budgetMs = DUMP_READ_BUDGET_MS): SchedulerSnapshot {
  const deadline = performance.now() + budgetMs
  const objs = guard(() => findBpfObjects(view))
  if ('error' in objs) return { maps: { notRead: objs.error }, globals: { error: objs.error } }
  const late = () => performance.now() > deadline
  const maps = objs.maps.map((map) => {
    const info = mapToWire(map)
    if (!READABLE_TYPES.includes(map.type)) return { info }
    if (late()) return { info, error: `not read: the dump's ${budgetMs} ms budget ran out` }
    const c = guard(() => readMap(view, map, { max: DUMP_MAP_MAX }))
    return 'error' in c ? { info, error: c.error } : { info, entries: c.entries, truncated: c.truncated }
  })
  const globals = late() ? { error: `not read: the dump's ${budgetMs} ms budget ran out` } : guard(() => bpfGlobals(view, objs))
  return { maps, globals }
}

/** `f()`, or its one-line error: a dump takes what it can get. */
export function guard<T>(f: () => T): T | { error: string } {
  try {
    return f()
  } catch (e) {
    return { error: describeError(e) }
  }
}
