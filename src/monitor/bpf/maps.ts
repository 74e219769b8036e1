/**
 * The guest's BPF maps, found through the processes holding them: every "bpf-map" file in every
 * process's fd table, deduplicated by map address. `owner` is the first process found holding the
 * map — the loader (a scheduler's user-space part); which BPF program uses a map is not recorded
 * on the map, so the process is what can be known. A map only a program holds (no fd left) is not
 * listed.
 */
import type { BtfEnum } from '../btf/index.js'
import type { KernelView } from '../kernel-view.js'
import { fileName, filePrivate, openFiles } from './fds.js'
import { isKernelPtr, off } from './kmem.js'
import { walkTasks } from './tasks.js'

export interface MapOwner {
  pid: number
  comm: string
  fd: number
}

export interface BpfMapInfo {
  /** The struct bpf_map's address. */
  addr: bigint
  id: number
  name: string
  /** As bpftool prints it: `array`, `hash`, `percpu_array`, `struct_ops` … */
  type: string
  /** enum bpf_map_type's value. */
  typeId: number
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
  frozen: boolean
  /** struct btf * of the map (0n: none). */
  btf: bigint
  btfKeyTypeId: number
  btfValueTypeId: number
  /** A struct_ops map's value type in the kernel's BTF (`bpf_struct_ops_sched_ext_ops`), else 0. */
  btfVmlinuxValueTypeId: number
  owner: MapOwner
}

/** The bpf_link objects seen on the way (a struct_ops link tells which struct_ops map is attached). */
export interface BpfLinkRef {
  addr: bigint
  owner: MapOwner
}

export interface BpfObjects {
  maps: BpfMapInfo[]
  links: BpfLinkRef[]
  /** Every process was seen: the task lists did not change under the walk (see walkTasks). */
  complete: boolean
}

/** Walks of the task list tried before findBpfObjects settles for a torn one. */
const WALKS = 3

/** `BPF_MAP_TYPE_PERCPU_ARRAY` → `percpu_array`, through the kernel's enum bpf_map_type. */
export function mapTypeName(view: KernelView, typeId: number): string {
  const e = view.btf.byName('bpf_map_type', 'ENUM')[0] as BtfEnum | undefined
  const hit = e?.values.find((v) => v.value === typeId)
  return hit ? hit.name.replace(/^BPF_MAP_TYPE_/, '').toLowerCase() : `type ${typeId}`
}

/** The struct bpf_map at `addr`; undefined when any of it is unreadable or it does not look like a map. */
export function readMapInfo(view: KernelView, addr: bigint, owner: MapOwner): BpfMapInfo | undefined {
  const btf = view.btf
  const head = view.read(addr, btf.struct('bpf_map').size)
  if (!head) return undefined
  const at = (path: string) => off(btf, 'bpf_map', path)
  const u = (path: string) => head.readUInt32LE(at(path))
  const typeId = u('map_type')
  const nameBytes = head.subarray(at('name'), at('name') + 16)
  const nul = nameBytes.indexOf(0)
  const info: BpfMapInfo = {
    addr,
    id: u('id'),
    name: nameBytes.subarray(0, nul < 0 ? 16 : nul).toString('utf8'),
    type: mapTypeName(view, typeId),
    typeId,
    keySize: u('key_size'),
    valueSize: u('value_size'),
    maxEntries: u('max_entries'),
    flags: u('map_flags'),
    frozen: head[at('frozen')] !== 0,
    btf: head.readBigUInt64LE(at('btf')),
    btfKeyTypeId: u('btf_key_type_id'),
    btfValueTypeId: u('btf_value_type_id'),
    btfVmlinuxValueTypeId: u('btf_vmlinux_value_type_id'),
    owner,
  }
  // A freed or reused object reads as garbage: a map's sizes are bounded (KMALLOC_MAX_SIZE, u32 ids).
  if (info.typeId > 64 || info.valueSize > 1 << 30 || info.keySize > 1 << 30) return undefined
  return info
}

/**
 * Every BPF map and link held by a guest process's fd. A walk the guest tore (a task exiting or
 * forking under it) may miss a process, so it is tried again, up to WALKS times; what the last one
 * found is returned with `complete: false`.
 */
export function findBpfObjects(view: KernelView): BpfObjects {
  let objs = walkBpfObjects(view)
  for (let i = 1; i < WALKS && !objs.complete; i++) objs = walkBpfObjects(view)
  return objs
}

function walkBpfObjects(view: KernelView): BpfObjects {
  const maps = new Map<bigint, BpfMapInfo>()
  const links = new Map<bigint, BpfLinkRef>()
  const tables = new Set<bigint>()
  const ended = { complete: false }
  for (const task of walkTasks(view, { threads: true, ended })) {
    if (!isKernelPtr(task.files) || tables.has(task.files)) continue
    tables.add(task.files)
    for (const { fd, file } of openFiles(view, task.files)) {
      const kind = fileName(view, file)
      if (kind !== 'bpf-map' && kind !== 'bpf_link') continue
      const obj = filePrivate(view, file)
      if (!isKernelPtr(obj) || maps.has(obj) || links.has(obj)) continue
      const owner = { pid: task.tgid, comm: task.comm, fd }
      if (kind === 'bpf_link') links.set(obj, { addr: obj, owner })
      else {
        const info = readMapInfo(view, obj, owner)
        if (info) maps.set(obj, info)
      }
    }
  }
  return { maps: [...maps.values()].sort((a, b) => a.id - b.id), links: [...links.values()], complete: ended.complete }
}

/** The guest's BPF maps, by id. */
export function listMaps(view: KernelView): BpfMapInfo[] {
  return findBpfObjects(view).maps
}

/** One line per map, as `bpftool map` would list it: `12: array  name scx_qmap.bss  key 4B  value 24B  max_entries 1  (pid 201 scx_qmap)`. */
export function formatMap(m: BpfMapInfo): string {
  return `${m.id}: ${m.type}  name ${m.name}  key ${m.keySize}B  value ${m.valueSize}B  max_entries ${m.maxEntries}  flags 0x${m.flags.toString(16)}  (pid ${m.owner.pid} ${m.owner.comm})`
}
