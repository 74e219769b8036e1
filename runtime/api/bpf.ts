/**
 * `bpf`: the guest's BPF maps and the attached scheduler's globals, read and written by the host
 * through the maps' BTF. Values are plain objects (64-bit integers as bigints).
 *
 *   await bpf.maps()                          // [{ name: 'qmap_bss', type: 'array', … }, …]
 *   await bpf.map('stats').read()             // { map, entries: [{ key: 0, value: … }] }
 *   await bpf.globals()                       // { bss: { nr_enqueued: 12n, … }, data: …, rodata: … }
 *   await bpf.globals.set('test_error_cnt', 1)
 */
import type { BpfMapContents, BpfMapInfo, BpfValue } from '../protocol/monitor.js'
import { ask } from './monitor-bridge.js'

export interface BpfMapHandle {
  readonly name: string
  /** Every entry, decoded (ARRAY: by index; PERCPU_ARRAY: an array of per-CPU values; HASH: by key). */
  read(): Promise<BpfMapContents>
  /** Write one element of an ARRAY map: the value is encoded through the map's value type. */
  write(key: BpfValue, value: BpfValue): Promise<void>
}

export interface BpfGlobals {
  /** The attached scheduler's `.bss`, `.data` and `.rodata` globals, by section. */
  (): Promise<Record<string, Record<string, BpfValue>>>
  /** Set a `.bss`/`.data` global (`.rodata` is read-only). */
  set(name: string, value: BpfValue): Promise<void>
}

const globals: BpfGlobals = Object.assign(() => ask<Record<string, Record<string, BpfValue>>>({ op: 'globals' }, 'bpf.globals()'), {
  set: (name: string, value: BpfValue) => ask<void>({ op: 'global-set', name, value }, 'bpf.globals.set()'),
})

export const bpf = {
  /** Every BPF map in the guest: name, type, key and value size. */
  maps: (): Promise<BpfMapInfo[]> => ask<BpfMapInfo[]>({ op: 'maps' }, 'bpf.maps()'),
  map: (name: string): BpfMapHandle => ({
    name,
    read: () => ask<BpfMapContents>({ op: 'map-read', map: name }, 'bpf.map().read()'),
    write: (key, value) => ask<void>({ op: 'map-write', map: name, key, value }, 'bpf.map().write()'),
  }),
  globals,
}
