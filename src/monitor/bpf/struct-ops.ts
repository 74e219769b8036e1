/**
 * Which sched_ext scheduler is attached, from its struct_ops map: struct bpf_struct_ops_map keeps
 * the kernel's copy of the ops in `kvalue` (typed by the map's btf_vmlinux_value_type_id, e.g.
 * struct bpf_struct_ops_sched_ext_ops: `common.state` and `data`, the struct sched_ext_ops with
 * its `name`). A scheduler attached through a link (libbpf's SEC(".struct_ops.link"), every scx
 * scheduler) stays in state READY; the struct_ops bpf_link (bpf_struct_ops_link->map) is what says
 * it is attached. A legacy attach (no link) shows as INUSE.
 */
import type { BtfEnum } from '../btf/index.js'
import type { KernelView } from '../kernel-view.js'
import { cstr, f32, f64, off, u32 } from './kmem.js'
import { type BpfMapInfo, type BpfObjects, findBpfObjects, type MapOwner } from './maps.js'

export interface StructOpsInfo {
  /** The ops' `name` (sched_ext_ops.name: "qmap"). */
  name: string
  /** The kernel struct it implements: `sched_ext_ops`. */
  ops: string
  /** enum bpf_struct_ops_state without its prefix: INIT, INUSE, TOBEFREE, READY. */
  state: string
  /** A struct_ops link holds the map (or the state is INUSE). */
  attached: boolean
  map: BpfMapInfo
  owner: MapOwner
}

function enumLabel(view: KernelView, enumName: string, value: number, prefix: string): string {
  const e = view.btf.byName(enumName, 'ENUM')[0] as BtfEnum | undefined
  return e?.values.find((v) => v.value === value)?.name.replace(prefix, '') ?? String(value)
}

/** Maps held by struct_ops links. */
function linkedMaps(view: KernelView, objs: BpfObjects): Set<bigint> {
  const out = new Set<bigint>()
  const structOps = view.btf.enumValue('bpf_link_type', 'BPF_LINK_TYPE_STRUCT_OPS')
  for (const l of objs.links) {
    if (f32(view, l.addr, 'bpf_link', 'type') !== structOps) continue
    const map = f64(view, l.addr, 'bpf_struct_ops_link', 'map')
    if (map) out.add(map)
  }
  return out
}

/** Every struct_ops map with its ops name and state. */
export function structOpsMaps(view: KernelView, objs: BpfObjects = findBpfObjects(view)): StructOpsInfo[] {
  const linked = linkedMaps(view, objs)
  const out: StructOpsInfo[] = []
  for (const map of objs.maps) {
    if (map.type !== 'struct_ops' || !map.btfVmlinuxValueTypeId) continue
    const vt = view.btf.type(map.btfVmlinuxValueTypeId)
    if (vt?.kind !== 'STRUCT') continue
    const kvalue = map.addr + BigInt(off(view.btf, 'bpf_struct_ops_map', 'kvalue'))
    const state = u32(view, kvalue + BigInt(view.btf.member(vt.id, 'common.state').offset))
    const data = view.btf.member(vt.id, 'data')
    const ops = view.btf.resolved(data.type)
    let name = ''
    if (ops?.kind === 'STRUCT' && ops.members.some((m) => m.name === 'name')) name = cstr(view, kvalue + BigInt(data.offset + view.btf.member(ops.id, 'name').offset), 128) ?? ''
    if (state === undefined) continue
    const stateName = enumLabel(view, 'bpf_struct_ops_state', state, 'BPF_STRUCT_OPS_STATE_')
    out.push({ name, ops: ops?.name ?? vt.name, state: stateName, attached: linked.has(map.addr) || stateName === 'INUSE', map, owner: map.owner })
  }
  return out
}

/** The attached sched_ext scheduler (ops name, state, its map and process), or undefined when none is. */
export function attachedScheduler(view: KernelView, objs?: BpfObjects): StructOpsInfo | undefined {
  return structOpsMaps(view, objs).find((s) => s.ops === 'sched_ext_ops' && s.attached)
}
