/**
 * Guest virtual → guest physical, read from the host: a walk of the guest's x86-64 page tables in
 * guest RAM (Intel SDM vol. 3A §4.5: 4-level, and 5-level with CR4.LA57; 1 GiB pages at the PDPT,
 * 2 MiB at the PD), plus the kernel's fixed ranges as shortcuts when the caller knows them (the
 * direct map at PAGE_OFFSET, the kernel image at __START_KERNEL_map + phys_base). The guest keeps
 * running while we read: every entry is a copy, and a table that is not RAM or an entry that is not
 * present is an answer ({ mapped: false }), never an exception.
 */
import type { GuestMemory } from '../vm/memory/guest-memory.js'

export const PAGE_SIZE = 4096
export const LARGE_PAGE_SIZE = 2 * 1024 * 1024
export const HUGE_PAGE_SIZE = 1024 * 1024 * 1024

/** The direct map's base without KASLR (Documentation/arch/x86/x86_64/mm.rst). */
export const PAGE_OFFSET_4LEVEL = 0xffff_8880_0000_0000n
export const PAGE_OFFSET_5LEVEL = 0xff11_0000_0000_0000n
/** __START_KERNEL_map: the kernel image is mapped here, at physical phys_base. */
export const START_KERNEL_MAP = 0xffff_ffff_8000_0000n
/** KERNEL_IMAGE_SIZE without KASLR (with CONFIG_RANDOMIZE_BASE it is 1 GiB; modules follow it). */
export const KERNEL_IMAGE_SIZE = 512n * 1024n * 1024n

const PRESENT = 1n
const PAGE_SIZE_BIT = 0x80n
/** Physical address bits 51:12 of an entry (bit 63 is NX, 62:59 protection keys). */
const ADDR_MASK = 0x000f_ffff_ffff_f000n

export type NotMappedReason =
  /** An entry on the way has its present bit clear. */
  | 'not-present'
  /** A page table (from CR3 or an entry) is not in guest RAM: a torn or bogus entry. */
  | 'table-not-in-ram'
  /** The address is not canonical for the paging mode (bits above 47, or 56, not its sign). */
  | 'non-canonical'
  /** The page itself is not guest RAM (readVirtual). */
  | 'page-not-in-ram'
  /** The VM is gone and its RAM was released. */
  | 'memory-released'

export type Translation =
  | { readonly mapped: true; readonly pa: number; readonly pageSize: number }
  /** `level`: where the walk stopped, 5 (PML5) … 1 (PT); 0 for a non-canonical address or released memory. */
  | { readonly mapped: false; readonly reason: NotMappedReason; readonly level: number }

export interface PagingMode {
  /** CR4.LA57: 5-level paging. */
  readonly la57: boolean
}

const notMapped = (reason: NotMappedReason, level: number): Translation => ({ mapped: false, reason, level })

/** `va` is canonical: its bits above the top translated bit (47, or 56 with LA57) copy that bit. */
export function isCanonical(va: bigint, mode: PagingMode): boolean {
  const bits = mode.la57 ? 57 : 48
  return BigInt.asIntN(bits, va) === BigInt.asIntN(64, va)
}

/** Walk the page tables rooted at `cr3` (its flag bits are ignored) for `va`. */
export function translate(mem: GuestMemory, cr3: bigint, va: bigint, mode: PagingMode): Translation {
  if (mem.isReleased) return notMapped('memory-released', 0)
  va = BigInt.asUintN(64, va)
  if (!isCanonical(va, mode)) return notMapped('non-canonical', 0)
  let table = cr3 & ADDR_MASK
  for (let level = mode.la57 ? 5 : 4; level >= 1; level--) {
    const shift = 12n + 9n * BigInt(level - 1)
    const at = Number(table + ((va >> shift) & 0x1ffn) * 8n)
    if (!mem.isMapped(at, 8)) return notMapped('table-not-in-ram', level)
    const entry = mem.readU64(at)
    if (!(entry & PRESENT)) return notMapped('not-present', level)
    // PS is a page only at the PD (2 MiB) and the PDPT (1 GiB); the PT entry is always a page.
    if (level === 1 || ((level === 2 || level === 3) && entry & PAGE_SIZE_BIT)) {
      const offsetMask = (1n << shift) - 1n
      return { mapped: true, pa: Number((entry & ADDR_MASK & ~offsetMask) | (va & offsetMask)), pageSize: Number(offsetMask + 1n) }
    }
    table = entry & ADDR_MASK
  }
  return notMapped('not-present', 1) // unreachable: level 1 always returns
}

/** The kernel's fixed ranges, for translating without a walk. */
export interface KernelRanges {
  /** Base of the direct map of all physical memory. */
  readonly pageOffset: bigint
  /** Physical address the kernel image's __START_KERNEL_map maps to. */
  readonly physBase: bigint
  /** Bytes of the image mapping (KERNEL_IMAGE_SIZE). */
  readonly imageSize: bigint
  /** Bytes of the direct map: 64 TiB on 4-level; on 5-level all 52 physical address bits. */
  readonly directMapSize: bigint
}

/** The ranges of a kernel without KASLR (phys_base 0 unless the caller read it). */
export function fixedKernelRanges(mode: PagingMode, physBase = 0n): KernelRanges {
  return mode.la57
    ? { pageOffset: PAGE_OFFSET_5LEVEL, physBase, imageSize: KERNEL_IMAGE_SIZE, directMapSize: 1n << 52n }
    : { pageOffset: PAGE_OFFSET_4LEVEL, physBase, imageSize: KERNEL_IMAGE_SIZE, directMapSize: 1n << 46n }
}

/** The physical address of a direct-map or kernel-image address; undefined for any other. */
export function translateFixed(va: bigint, ranges: KernelRanges): number | undefined {
  va = BigInt.asUintN(64, va)
  if (va >= START_KERNEL_MAP && va - START_KERNEL_MAP < ranges.imageSize) return Number(va - START_KERNEL_MAP + ranges.physBase)
  if (va >= ranges.pageOffset && va - ranges.pageOffset < ranges.directMapSize) return Number(va - ranges.pageOffset)
  return undefined
}

/** translateFixed where it applies, else the walk. */
export function translateKernel(mem: GuestMemory, cr3: bigint, va: bigint, mode: PagingMode, ranges?: KernelRanges): Translation {
  const pa = ranges && translateFixed(va, ranges)
  if (pa !== undefined) return { mapped: true, pa, pageSize: PAGE_SIZE }
  return translate(mem, cr3, va, mode)
}

/**
 * A copy of `len` bytes at guest virtual `va` (page by page: contiguous virtual pages need not be
 * contiguous in physical memory), or the first page's failure.
 */
export function readVirtual(mem: GuestMemory, cr3: bigint, va: bigint, len: number, mode: PagingMode): Uint8Array | Translation {
  const out = new Uint8Array(len)
  let done = 0
  while (done < len) {
    const t = translate(mem, cr3, va + BigInt(done), mode)
    if (!t.mapped) return t
    const n = Math.min(len - done, t.pageSize - (t.pa % t.pageSize))
    if (!mem.isMapped(t.pa, n)) return notMapped('page-not-in-ram', 0)
    mem.read(t.pa, out.subarray(done, done + n))
    done += n
  }
  return out
}
