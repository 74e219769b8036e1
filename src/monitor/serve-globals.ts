/** The attached scheduler's globals for the guest's API, by section (`bss`, `data`, `rodata`), through src/monitor/bpf. */

import { type BpfObjects, findBpfObjects, GLOBAL_SECTIONS, readGlobals, schedulerGlobals } from './bpf/index.js'
import type { BtfValue } from './btf/index.js'
import type { KernelView } from './kernel-view.js'

export function bpfGlobals(view: KernelView, objs: BpfObjects = findBpfObjects(view)): Record<string, Record<string, BtfValue>> {
  const g = schedulerGlobals(view, { objs })
  const out: Record<string, Record<string, BtfValue>> = {}
  for (const section of GLOBAL_SECTIONS) if (g.maps[section]) out[section.slice(1)] = readGlobals(view, { objs, section })
  return out
}
