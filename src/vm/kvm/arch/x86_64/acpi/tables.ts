/**
 * All ACPI tables for one guest, laid out in the BIOS area (memory/layout.ts: 0xe0000 .. 1 MiB):
 * RSDP first (where a legacy scan finds it; the zero page also carries its address), then FACS
 * (64-byte aligned), DSDT, FADT, MADT, and for more than one NUMA node SRAT and SLIT (one node
 * gets neither, like the QEMU backend), then the XSDT listing FADT, MADT[, SRAT, SLIT].
 */
import type { TopologySpec as Topology } from '../../../../../../runtime/protocol/topology.js'
import { alignUp, type GuestAddress } from '../../../../memory/address.js'
import type { GuestMemory } from '../../../../memory/guest-memory.js'
import { type MemoryLayout, X86_LAYOUT } from '../../../memory/layout.js'
import { buildDsdt } from './dsdt.js'
import { buildFacs, buildFadt, FACS_ALIGN } from './fadt.js'
import { buildMadt } from './madt.js'
import { buildRsdp, buildXsdt, RSDP_SIZE } from './rsdp.js'
import { buildSlit } from './slit.js'
import { buildSrat } from './srat.js'

export interface AcpiTable {
  /** 'RSD PTR ' for the RSDP, else the 4-byte signature ('FACP' is the FADT, 'APIC' the MADT). */
  readonly signature: string
  readonly address: GuestAddress
  readonly bytes: Uint8Array
}

export interface AcpiTables {
  readonly rsdpAddress: GuestAddress
  /** Every structure with its address, in address order. */
  readonly tables: readonly AcpiTable[]
  /** First byte after the last table. */
  readonly end: GuestAddress
}

export function buildAcpiTables(t: Topology, layout: MemoryLayout, base: number = X86_LAYOUT.ACPI, limit: number = X86_LAYOUT.ACPI_END): AcpiTables {
  const tables: AcpiTable[] = []
  let cursor = base + RSDP_SIZE
  const place = (signature: string, bytes: Uint8Array, align = 16): number => {
    const address = alignUp(cursor, align)
    tables.push({ signature, address: address as GuestAddress, bytes })
    cursor = address + bytes.length
    return address
  }
  const facs = place('FACS', buildFacs(), FACS_ALIGN)
  const dsdt = place('DSDT', buildDsdt())
  const listed = [place('FACP', buildFadt({ facsAddress: facs, dsdtAddress: dsdt })), place('APIC', buildMadt(t))]
  if (t.numaNodes > 1) {
    listed.push(place('SRAT', buildSrat(t, layout)))
    listed.push(place('SLIT', buildSlit(t.numaNodes)))
  }
  const xsdt = place('XSDT', buildXsdt(listed))
  tables.unshift({ signature: 'RSD PTR ', address: base as GuestAddress, bytes: buildRsdp(xsdt) })
  if (cursor > limit) {
    throw new RangeError(`ACPI tables need ${cursor - base} bytes but only ${limit - base} are reserved for them`)
  }
  return { rsdpAddress: base as GuestAddress, tables, end: cursor as GuestAddress }
}

/** Writes the tables into guest RAM; returns the RSDP's address (for the zero page). */
export function writeAcpiTables(mem: GuestMemory, acpi: AcpiTables): GuestAddress {
  for (const t of acpi.tables) mem.write(t.address, t.bytes)
  return acpi.rsdpAddress
}
