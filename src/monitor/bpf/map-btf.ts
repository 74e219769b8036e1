/**
 * A map's BTF, read from the guest: struct btf keeps the blob user space loaded (`data`,
 * `data_size`, header included). A program's BTF (BPF_BTF_LOAD) stands alone; a module's is split
 * on vmlinux (`base_btf` set) and is parsed on top of the kernel's BTF. Parsed once per struct btf.
 */
import { Btf, BtfError } from '../btf/index.js'
import type { KernelView } from '../kernel-view.js'
import { f32, f64, isKernelPtr } from './kmem.js'
import type { BpfMapInfo } from './maps.js'

/** Largest map BTF read (scx schedulers' are ~10–100 KiB). */
const MAX_BTF = 16 * 1024 * 1024

const cache = new WeakMap<KernelView, Map<bigint, Btf>>()

/** The map's BTF, or undefined when it has none or it cannot be read (the values are then raw bytes). */
export function mapBtf(view: KernelView, map: BpfMapInfo): Btf | undefined {
  if (!isKernelPtr(map.btf)) return undefined
  let per = cache.get(view)
  if (!per) cache.set(view, (per = new Map()))
  const have = per.get(map.btf)
  if (have) return have
  const data = f64(view, map.btf, 'btf', 'data')
  const size = f32(view, map.btf, 'btf', 'data_size')
  const base = f64(view, map.btf, 'btf', 'base_btf')
  if (!isKernelPtr(data) || size === undefined || size > MAX_BTF || base === undefined) return undefined
  const blob = view.read(data, size)
  if (!blob) return undefined
  try {
    const btf = Btf.parse(new Uint8Array(blob), base !== 0n ? view.btf : undefined)
    per.set(map.btf, btf)
    return btf
  } catch (e) {
    if (e instanceof BtfError) return undefined
    throw e
  }
}
