/**
 * Typed reads of guest kernel memory through a KernelView, with struct member offsets taken from the
 * kernel's BTF (cached per BTF). A read that is not mapped gives undefined: the guest keeps running
 * while the host reads, so a pointer may be stale and a list torn; callers stop there.
 */
import type { Btf } from '../btf/index.js'
import type { KernelView } from '../kernel-view.js'

const offsets = new WeakMap<Btf, Map<string, number>>()

/** Byte offset of `path` (`f_path.dentry`, `common.state`) inside `struct name`. */
export function off(btf: Btf, struct: string, path: string): number {
  let m = offsets.get(btf)
  if (!m) offsets.set(btf, (m = new Map()))
  const key = `${struct}:${path}`
  let v = m.get(key)
  if (v === undefined) {
    v = btf.member(struct, path).offset
    m.set(key, v)
  }
  return v
}

export function u32(view: KernelView, va: bigint): number | undefined {
  return view.read(va, 4)?.readUInt32LE(0)
}

export function u64(view: KernelView, va: bigint): bigint | undefined {
  return view.read(va, 8)?.readBigUInt64LE(0)
}

/** A pointer member: undefined when unreadable, 0n for NULL. */
export function ptr(view: KernelView, va: bigint): bigint | undefined {
  return u64(view, va)
}

/** A NUL-terminated string of at most `max` bytes. */
export function cstr(view: KernelView, va: bigint, max: number): string | undefined {
  const b = view.read(va, max)
  if (!b) return undefined
  const nul = b.indexOf(0)
  return b.subarray(0, nul < 0 ? max : nul).toString('utf8')
}

/** The u32 member `path` of the `struct` at `base`. */
export function f32(view: KernelView, base: bigint, struct: string, path: string): number | undefined {
  return u32(view, base + BigInt(off(view.btf, struct, path)))
}

/** The u64 (or pointer) member `path` of the `struct` at `base`. */
export function f64(view: KernelView, base: bigint, struct: string, path: string): bigint | undefined {
  return u64(view, base + BigInt(off(view.btf, struct, path)))
}

/** A kernel pointer: in the kernel half (from 0xff00… with 5-level paging, whose direct map is at 0xff11…), and not an ERR_PTR. */
export function isKernelPtr(p: bigint | undefined): p is bigint {
  return p !== undefined && p >= 0xff00_0000_0000_0000n && p < 0xffff_ffff_ffff_f000n
}
