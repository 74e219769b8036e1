/**
 * Reading a map's elements from guest memory, as the kernel lays them out in 6.x:
 * ARRAY — struct bpf_array, `elem_size` (value_size rounded up to 8) bytes per element from
 *   `value` (an mmapable array such as `.bss` is vmalloc'd: KernelView's page walk reads it);
 * PERCPU_ARRAY — `pptrs[i]`, a per-CPU pointer: CPU c's copy is at pptrs[i] + __per_cpu_offset[c];
 * HASH / LRU_HASH (and their per-CPU kinds) — struct bpf_htab's `buckets`, each an hlist_nulls of
 *   struct htab_elem: the key at `key`, the value round_up(key_size, 8) after it (a per-CPU kind
 *   keeps a per-CPU pointer right after the key instead: htab_elem_get_ptr).
 * Values are decoded through the map's BTF into plain objects; a map without BTF gives raw bytes.
 */
import { type BtfValue, decodeValue } from '../btf/index.js'
import type { KernelView } from '../kernel-view.js'
import { BpfMapError } from './errors.js'
import { f32, f64, isKernelPtr, off } from './kmem.js'
import { mapBtf } from './map-btf.js'
import type { BpfMapInfo } from './maps.js'

/** A decoded value, or the bytes when the map has no BTF for it. */
export type BpfValue = BtfValue | Uint8Array

export interface MapEntry {
  /** The index for array maps; the decoded key (or its bytes) for hash maps. */
  key: BpfValue
  /** The value; for a per-CPU map, one value per CPU (index = CPU). */
  value: BpfValue | BpfValue[]
}

export interface MapContents {
  map: BpfMapInfo
  entries: MapEntry[]
  /** More elements than `max` were there. */
  truncated: boolean
}

export interface ReadOptions {
  /** Most elements read (default 65,536). */
  max?: number
}

export const READABLE_TYPES = ['array', 'percpu_array', 'hash', 'lru_hash', 'percpu_hash', 'lru_percpu_hash']

export const roundUp8 = (n: number) => Math.ceil(n / 8) * 8

function readOrThrow(view: KernelView, map: BpfMapInfo, va: bigint, len: number): Buffer {
  const b = view.read(va, len)
  if (!b) throw new BpfMapError(`BPF map '${map.name}' (id ${map.id}) is not readable at 0x${va.toString(16)}: it was freed while being read; read it again`)
  return b
}

/** Decoder for this map's keys and values (BTF when it has some, else bytes). */
export function mapCodec(view: KernelView, map: BpfMapInfo) {
  const btf = mapBtf(view, map)
  const dec = (id: number, bytes: Uint8Array): BpfValue => (btf && id ? decodeValue(btf, id, bytes) : new Uint8Array(bytes))
  return { btf, key: (b: Uint8Array) => dec(map.btfKeyTypeId, b), value: (b: Uint8Array) => dec(map.btfValueTypeId, b) }
}

/** Address of element `index`'s value in an ARRAY map (the first CPU's copy's pointer for PERCPU_ARRAY). */
export function arrayElemAddress(view: KernelView, map: BpfMapInfo, index: number): bigint {
  const elemSize = f32(view, map.addr, 'bpf_array', 'elem_size')
  if (elemSize === undefined) throw new BpfMapError(`BPF map '${map.name}' (id ${map.id}) is gone; list the maps again`)
  return map.addr + BigInt(off(view.btf, 'bpf_array', 'value') + index * elemSize)
}

function perCpu(view: KernelView, map: BpfMapInfo, pptr: bigint, size: number, decode: (b: Uint8Array) => BpfValue): BpfValue[] {
  return view.percpuOffsets.map((o) => decode(readOrThrow(view, map, pptr + o, size)))
}

/** The elements of `map` (at most `opts.max`). */
export function readMap(view: KernelView, map: BpfMapInfo, opts: ReadOptions = {}): MapContents {
  const max = opts.max ?? 65_536
  const codec = mapCodec(view, map)
  if (map.type === 'array' || map.type === 'percpu_array') {
    const n = Math.min(map.maxEntries, max)
    const entries: MapEntry[] = []
    if (map.type === 'array') {
      const stride = roundUp8(map.valueSize)
      const all = readOrThrow(view, map, arrayElemAddress(view, map, 0), stride * n)
      for (let i = 0; i < n; i++) entries.push({ key: i, value: codec.value(all.subarray(i * stride, i * stride + map.valueSize)) })
    } else {
      const pptrs = readOrThrow(view, map, map.addr + BigInt(off(view.btf, 'bpf_array', 'pptrs')), 8 * n)
      for (let i = 0; i < n; i++) entries.push({ key: i, value: perCpu(view, map, pptrs.readBigUInt64LE(i * 8), map.valueSize, codec.value) })
    }
    return { map, entries, truncated: map.maxEntries > n }
  }
  if (READABLE_TYPES.includes(map.type)) return readHash(view, map, codec, max)
  throw new BpfMapError(`BPF map '${map.name}' is a ${map.type} map; ktstr reads ${READABLE_TYPES.join(', ')} maps`)
}

function readHash(view: KernelView, map: BpfMapInfo, codec: ReturnType<typeof mapCodec>, max: number): MapContents {
  const btf = view.btf
  const buckets = f64(view, map.addr, 'bpf_htab', 'buckets')
  const nBuckets = f32(view, map.addr, 'bpf_htab', 'n_buckets')
  if (!isKernelPtr(buckets) || nBuckets === undefined || nBuckets > 1 << 26) throw new BpfMapError(`BPF map '${map.name}' (id ${map.id}) is gone; list the maps again`)
  const bucketSize = btf.struct('bucket').size
  const keyAt = off(btf, 'htab_elem', 'key')
  const percpu = map.type.includes('percpu')
  const valueAt = keyAt + (percpu ? map.keySize : roundUp8(map.keySize))
  const elemLen = valueAt + (percpu ? 8 : map.valueSize)
  const entries: MapEntry[] = []
  // Each element is visited once; a torn chain (an element freed and reused mid-walk) could loop or
  // wander: the per-walk seen set and the element budget bound it.
  const seen = new Set<bigint>()
  let budget = Math.max(map.maxEntries, 1) * 2 + 1024
  let truncated = false
  for (let b = 0; b < nBuckets && !truncated; b++) {
    let node = f64(view, buckets + BigInt(b * bucketSize), 'hlist_nulls_head', 'first')
    // hlist_nulls: the chain ends at an odd "nulls" marker, not at NULL.
    while (node !== undefined && (node & 1n) === 0n && isKernelPtr(node) && !seen.has(node) && budget-- > 0) {
      seen.add(node)
      if (entries.length >= max) {
        truncated = true
        break
      }
      const elem = view.read(node, elemLen)
      if (!elem) break
      const key = codec.key(elem.subarray(keyAt, keyAt + map.keySize))
      const value = percpu ? perCpu(view, map, elem.readBigUInt64LE(valueAt), map.valueSize, codec.value) : codec.value(elem.subarray(valueAt, valueAt + map.valueSize))
      entries.push({ key, value })
      node = f64(view, node, 'hlist_nulls_node', 'next')
    }
  }
  return { map, entries, truncated }
}
