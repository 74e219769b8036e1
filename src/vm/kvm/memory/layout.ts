/**
 * The x86_64 guest-physical memory map of our VMM, in one place.
 *
 *   0x0000_0500  GDT (boot protocol selectors 0x10 code, 0x18 data, 0x20 TSS)
 *   0x0000_0540  IDT (empty; interrupts stay off until the kernel loads its own)
 *   0x0000_7000  zero page (struct boot_params, 4 KiB)
 *   0x0000_8ff0  initial stack top (the decompressor switches to its own at once)
 *   0x0000_9000  PML4, 0xa000 PDPT, 0xb000-0xefff four PDs: 2 MiB identity pages for 0-4 GiB
 *   0x0002_0000  kernel command line (NUL-terminated, up to the kernel's cmdline_size)
 *   0x0009_fc00  EBDA .. 0xe_0000 reserved (e820), as on a PC
 *   0x000e_0000  ACPI tables, RSDP first (also where a legacy RSDP scan looks) .. 1 MiB
 *   0x0010_0000  RAM; the kernel loads at its pref_address (16 MiB for ours), initrd at the top
 *                of low RAM
 *   0xc000_0000  32-bit MMIO hole (RAM stops at 3 GiB and continues at 4 GiB):
 *                0xd000_0000 + n*0x1000 virtio-mmio windows, 0xfec0_0000 IO-APIC,
 *                0xfee0_0000 local APIC, 0xfffb_c000 KVM identity-map page, 0xfffb_d000 KVM TSS
 *   0x1_0000_0000 RAM above 4 GiB when the guest has more than 3 GiB
 */
import { KtstrError } from '../../../util/errors.js'
import { alignDown, type GuestAddress } from '../../memory/address.js'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

const ga = (n: number) => n as GuestAddress

export const X86_LAYOUT = {
  GDT: ga(0x500),
  IDT: ga(0x540),
  ZERO_PAGE: ga(0x7000),
  BOOT_STACK_TOP: ga(0x8ff0),
  PML4: ga(0x9000),
  PDPT: ga(0xa000),
  /** First of PD_COUNT consecutive page directories. */
  PD: ga(0xb000),
  PD_COUNT: 4,
  CMDLINE: ga(0x2_0000),
  CMDLINE_MAX: 0x1_0000,
  EBDA: ga(0x9_fc00),
  ACPI: ga(0xe_0000),
  ACPI_END: ga(0x10_0000),
  HIMEM: ga(0x10_0000),
  MMIO_HOLE: ga(0xc000_0000),
  HIGH_RAM: ga(0x1_0000_0000),
  VIRTIO_MMIO: ga(0xd000_0000),
  VIRTIO_MMIO_SIZE: 0x1000,
  IOAPIC: ga(0xfec0_0000),
  LAPIC: ga(0xfee0_0000),
  /** KVM_SET_IDENTITY_MAP_ADDR (one page) and KVM_SET_TSS_ADDR (three pages), inside the hole. */
  KVM_IDENTITY_MAP: ga(0xfffb_c000),
  KVM_TSS: ga(0xfffb_d000),
} as const

/** Smallest guest we lay out: the kernel alone loads at 16 MiB. */
export const MIN_MEMORY = 64 * MiB

export interface RamRange {
  readonly base: GuestAddress
  readonly size: number
}

export interface MemoryLayout {
  /** Guest RAM in bytes (all ranges together). */
  readonly memBytes: number
  /** RAM ranges in address order: [0, lowRamEnd) and, above 3 GiB of RAM, [4 GiB, …). */
  readonly ram: readonly RamRange[]
  /** End of RAM below the MMIO hole. */
  readonly lowRamEnd: GuestAddress
}

export function x86MemoryLayout(memBytes: number): MemoryLayout {
  if (!Number.isSafeInteger(memBytes) || memBytes % (4 * KiB) !== 0) {
    throw new KtstrError(`guest memory of ${memBytes} bytes is not a whole number of 4 KiB pages`)
  }
  if (memBytes < MIN_MEMORY) {
    throw new KtstrError(`guest memory of ${memBytes / MiB} MiB is too small; give the VM at least ${MIN_MEMORY / MiB} MiB`)
  }
  const low = Math.min(memBytes, X86_LAYOUT.MMIO_HOLE)
  const ram: RamRange[] = [{ base: ga(0), size: low }]
  if (memBytes > low) ram.push({ base: X86_LAYOUT.HIGH_RAM, size: memBytes - low })
  return { memBytes, ram, lowRamEnd: ga(low) }
}

/** NUMA node boundaries are 2 MiB aligned (a large page never straddles two nodes). */
const NODE_ALIGN = 2 * MiB

/**
 * Guest RAM split evenly over `nodes` NUMA nodes, in address order: node 0 gets the first part.
 * A node whose part spans the MMIO hole gets two ranges. The last node takes the remainder.
 */
export function nodeMemoryRanges(layout: MemoryLayout, nodes: number): RamRange[][] {
  const per = alignDown(layout.memBytes / nodes, NODE_ALIGN)
  if (per < 2 * NODE_ALIGN) {
    throw new KtstrError(`guest memory of ${layout.memBytes / MiB} MiB is too small for ${nodes} NUMA nodes; give each node at least 4 MiB`)
  }
  const out: RamRange[][] = []
  for (let n = 0; n < nodes; n++) {
    const start = n * per
    const end = n === nodes - 1 ? layout.memBytes : (n + 1) * per
    const ranges: RamRange[] = []
    let rStart = 0 // offset of range r when counting RAM bytes only
    for (const r of layout.ram) {
      const lo = Math.max(start, rStart)
      const hi = Math.min(end, rStart + r.size)
      if (hi > lo) ranges.push({ base: ga(r.base + (lo - rStart)), size: hi - lo })
      rStart += r.size
    }
    out.push(ranges)
  }
  return out
}

/**
 * ISA IRQs free for virtio-mmio devices. Edge-triggered ISA lines (identity-mapped GSIs on the
 * IO-APIC) are what a `virtio_mmio.device=` device requests; 3/4 are the UARTs, 8 the RTC slot,
 * 9 the ACPI SCI, 13 the FPU, 0-2 timer/keyboard/cascade.
 */
export const VIRTIO_MMIO_IRQS: readonly number[] = [5, 6, 7, 10, 11, 12, 14, 15]

export interface MmioDeviceWindow {
  readonly index: number
  readonly base: GuestAddress
  readonly size: number
  readonly irq: number
}

/** The n-th virtio-mmio device's register window and IRQ. */
export function virtioMmioWindow(index: number): MmioDeviceWindow {
  const irq = VIRTIO_MMIO_IRQS[index]
  if (!Number.isInteger(index) || index < 0 || irq === undefined) {
    throw new RangeError(`virtio-mmio device ${index}: only ${VIRTIO_MMIO_IRQS.length} devices have an IRQ`)
  }
  return {
    index,
    base: ga(X86_LAYOUT.VIRTIO_MMIO + index * X86_LAYOUT.VIRTIO_MMIO_SIZE),
    size: X86_LAYOUT.VIRTIO_MMIO_SIZE,
    irq,
  }
}
