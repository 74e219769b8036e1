/**
 * The BIOS e820 memory map we hand the kernel in the zero page (boot_params.e820_table,
 * Documentation/arch/x86/zero-page.rst). Everything not listed (the MMIO hole) is not RAM.
 */
import type { GuestAddress } from '../../../../memory/address.js'
import { type MemoryLayout, X86_LAYOUT } from '../../../memory/layout.js'

export const E820_TYPE = { RAM: 1, RESERVED: 2, ACPI: 3, NVS: 4, UNUSABLE: 5 } as const
export type E820Type = (typeof E820_TYPE)[keyof typeof E820_TYPE]

export interface E820Entry {
  readonly addr: GuestAddress
  readonly size: number
  readonly type: E820Type
}

/** Entries the zero page has room for (E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ZERO_PAGE_ENTRIES = 128

/**
 * RAM below the EBDA, the PC's reserved 640 KiB-1 MiB area (with our ACPI tables marked as ACPI
 * data in its top 128 KiB), RAM from 1 MiB to the MMIO hole, and RAM above 4 GiB.
 */
export function buildE820(layout: MemoryLayout): E820Entry[] {
  const L = X86_LAYOUT
  const e: E820Entry[] = [
    { addr: 0 as GuestAddress, size: L.EBDA, type: E820_TYPE.RAM },
    { addr: L.EBDA, size: L.ACPI - L.EBDA, type: E820_TYPE.RESERVED },
    { addr: L.ACPI, size: L.ACPI_END - L.ACPI, type: E820_TYPE.ACPI },
    { addr: L.HIMEM, size: layout.lowRamEnd - L.HIMEM, type: E820_TYPE.RAM },
  ]
  for (const r of layout.ram) if (r.base >= L.HIGH_RAM) e.push({ addr: r.base, size: r.size, type: E820_TYPE.RAM })
  return e
}
