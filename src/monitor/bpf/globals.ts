/**
 * A BPF scheduler's global variables: libbpf puts them in ARRAY maps of one element named
 * `<object prefix>.bss`, `.data`, `.rodata` (names cut to 15 characters, the section kept whole),
 * whose value type is the section's DATASEC. With several schedulers' maps in the guest, the
 * attached scheduler's (same process as its struct_ops map) are used, unless `pid` picks one.
 */
import type { BtfValue } from '../btf/index.js'
import type { KernelView } from '../kernel-view.js'
import { encodeValue } from './encode.js'
import { BpfMapError } from './errors.js'
import { mapBtf } from './map-btf.js'
import { type BpfMapInfo, type BpfObjects, findBpfObjects, type MapOwner } from './maps.js'
import { arrayElemAddress, mapCodec } from './read.js'
import { attachedScheduler } from './struct-ops.js'

export const GLOBAL_SECTIONS = ['.bss', '.data', '.rodata'] as const
export type GlobalSection = (typeof GLOBAL_SECTIONS)[number]

export interface GlobalsOptions {
  /** The process whose globals to use (default: the attached scheduler's, or the only loader). */
  pid?: number
  objs?: BpfObjects
}

export interface SchedulerGlobals {
  owner: MapOwner
  /** The section maps found (`.rodata` → scx_qmap.rodata …). */
  maps: Partial<Record<GlobalSection, BpfMapInfo>>
}

export function sectionOf(map: BpfMapInfo): GlobalSection | undefined {
  if (map.type !== 'array' || map.maxEntries !== 1) return undefined
  return GLOBAL_SECTIONS.find((s) => map.name.endsWith(s))
}

/** The global-variable maps of one scheduler process. */
export function schedulerGlobals(view: KernelView, opts: GlobalsOptions = {}): SchedulerGlobals {
  const objs = opts.objs ?? findBpfObjects(view)
  const byPid = new Map<number, SchedulerGlobals>()
  for (const m of objs.maps) {
    const s = sectionOf(m)
    if (!s) continue
    const g = byPid.get(m.owner.pid) ?? { owner: m.owner, maps: {} }
    g.maps[s] ??= m
    byPid.set(m.owner.pid, g)
  }
  const which = (g: SchedulerGlobals) => `pid ${g.owner.pid} (${g.owner.comm})`
  if (opts.pid !== undefined) {
    const g = byPid.get(opts.pid)
    if (!g)
      throw new BpfMapError(`pid ${opts.pid} holds no .bss/.data/.rodata maps; ${byPid.size ? `those that do: ${[...byPid.values()].map(which).join(', ')}` : 'no process does'}`)
    return g
  }
  if (byPid.size === 1) return [...byPid.values()][0]!
  if (byPid.size === 0) throw new BpfMapError('no BPF scheduler globals in the guest (no .bss/.data/.rodata map held by a process): is the scheduler loaded?')
  const attached = attachedScheduler(view, objs)
  const g = attached && byPid.get(attached.owner.pid)
  if (g) return g
  throw new BpfMapError(`several processes hold BPF globals and none is the attached scheduler: ${[...byPid.values()].map(which).join(', ')}; pass the pid`)
}

/** The globals of `section`'s map, decoded: { varName: value }. */
function sectionValues(view: KernelView, map: BpfMapInfo): Record<string, BtfValue> {
  const codec = mapCodec(view, map)
  const bytes = view.read(arrayElemAddress(view, map, 0), map.valueSize)
  if (!bytes) throw new BpfMapError(`BPF map '${map.name}' (id ${map.id}) is not readable: it was freed; read it again`)
  const v = codec.value(bytes)
  if (v instanceof Uint8Array || v === null || typeof v !== 'object' || Array.isArray(v))
    throw new BpfMapError(`BPF map '${map.name}' has no BTF DATASEC for its variables, so its globals cannot be named`)
  return v
}

/** Every global of the scheduler, decoded: { varName: value } (with `section` only that section's). */
export function readGlobals(view: KernelView, opts: GlobalsOptions & { section?: GlobalSection } = {}): Record<string, BtfValue> {
  const g = schedulerGlobals(view, opts)
  const out: Record<string, BtfValue> = {}
  for (const s of GLOBAL_SECTIONS) {
    const m = g.maps[s]
    if (m && (!opts.section || opts.section === s)) Object.assign(out, sectionValues(view, m))
  }
  return out
}

interface VarPlace {
  map: BpfMapInfo
  section: GlobalSection
  type: number
  offset: number
  size: number
}

function variables(view: KernelView, g: SchedulerGlobals): Map<string, VarPlace> {
  const out = new Map<string, VarPlace>()
  for (const section of GLOBAL_SECTIONS) {
    const map = g.maps[section]
    const btf = map && mapBtf(view, map)
    const sec = btf && map.btfValueTypeId ? btf.type(map.btfValueTypeId) : undefined
    if (!map || !btf || sec?.kind !== 'DATASEC') continue
    for (const v of sec.vars) out.set(btf.get(v.type).name, { map, section, type: v.type, offset: v.offset, size: v.size })
  }
  return out
}

/** Set the `.bss`/`.data` global `name` to `value` (encoded through the map's BTF; an object may name some members only). */
export function setGlobal(view: KernelView, name: string, value: unknown, opts: GlobalsOptions = {}): void {
  const g = schedulerGlobals(view, opts)
  const vars = variables(view, g)
  const v = vars.get(name)
  const writable = [...vars].filter(([, p]) => p.section !== '.rodata').map(([n]) => n)
  if (!v) throw new BpfMapError(`the scheduler (pid ${g.owner.pid} ${g.owner.comm}) has no global '${name}'; its .bss/.data globals are ${writable.join(', ') || '(none)'}`)
  if (v.section === '.rodata')
    throw new BpfMapError(`global '${name}' is in .rodata (${v.map.name}), which is frozen: the verifier may have inlined it; set a .bss or .data global (${writable.join(', ')})`)
  const btf = mapBtf(view, v.map)!
  const at = arrayElemAddress(view, v.map, 0) + BigInt(v.offset)
  const cur = view.read(at, v.size)
  if (!cur) throw new BpfMapError(`BPF map '${v.map.name}' (id ${v.map.id}) is not readable: it was freed; read the globals again`)
  encodeValue(btf, v.type, value, cur, `${v.map.name}: ${name}`)
  if (!view.write(at, cur)) throw new BpfMapError(`BPF map '${v.map.name}' (id ${v.map.id}) is not writable: it was freed; read the globals again`)
}
