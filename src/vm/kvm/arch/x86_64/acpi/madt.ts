/**
 * MADT (ACPI 6.5 §5.2.12): one Processor Local APIC entry per CPU (x2APIC entry when the APIC id
 * is 255 or more, §5.2.12.12), in CPU order so Linux numbers CPUs as our topology does; the KVM
 * in-kernel IO-APIC; interrupt source overrides for the PC's IRQ0 → GSI2 and the level-triggered
 * SCI; LINT1 as NMI on every CPU.
 */
import type { TopologySpec as Topology } from '../../../../../../runtime/protocol/topology.js'
import { X86_LAYOUT } from '../../../memory/layout.js'
import { ACPI_PM, IOAPIC_ID } from '../platform.js'
import { cpuPlaces, MAX_XAPIC_ID } from '../topology-ids.js'
import { sdt } from './sdt.js'

export const MADT_REVISION = 5

export const MADT_TYPE = {
  LOCAL_APIC: 0,
  IO_APIC: 1,
  INTERRUPT_SOURCE_OVERRIDE: 2,
  LOCAL_APIC_NMI: 4,
  LOCAL_X2APIC: 9,
  LOCAL_X2APIC_NMI: 0x0a,
} as const

/** MADT flags: PCAT_COMPAT, the board has dual 8259s (KVM's in-kernel PIC). */
const PCAT_COMPAT = 1
const ENABLED = 1

/** MPS INTI flags (§5.2.12.5): polarity bits 1:0, trigger mode bits 3:2. */
export const MPS_INTI = {
  CONFORMS: 0,
  ACTIVE_HIGH: 0b01,
  ACTIVE_LOW: 0b11,
  EDGE: 0b01 << 2,
  LEVEL: 0b11 << 2,
} as const

export function buildMadt(t: Topology): Uint8Array {
  const cpus = cpuPlaces(t)
  const anyX2apic = cpus.some((c) => c.apicId > MAX_XAPIC_ID)
  return sdt('APIC', MADT_REVISION, (w) => {
    w.u32(X86_LAYOUT.LAPIC).u32(PCAT_COMPAT)
    for (const c of cpus) {
      if (c.apicId <= MAX_XAPIC_ID) {
        w.u8(MADT_TYPE.LOCAL_APIC).u8(8).u8(c.cpu).u8(c.apicId).u32(ENABLED) // uid, APIC id, flags
      } else {
        w.u8(MADT_TYPE.LOCAL_X2APIC).u8(16).u16(0).u32(c.apicId).u32(ENABLED).u32(c.cpu) // x2APIC id, flags, uid
      }
    }
    w.u8(MADT_TYPE.IO_APIC).u8(12).u8(IOAPIC_ID).u8(0).u32(X86_LAYOUT.IOAPIC).u32(0) // GSI base 0
    // ISA IRQ 0 (PIT) arrives on IO-APIC pin 2 on PCs (and in KVM's IO-APIC).
    w.u8(MADT_TYPE.INTERRUPT_SOURCE_OVERRIDE).u8(10).u8(0).u8(0).u32(2).u16(MPS_INTI.CONFORMS)
    w.u8(MADT_TYPE.INTERRUPT_SOURCE_OVERRIDE).u8(10).u8(0).u8(ACPI_PM.SCI_IRQ).u32(ACPI_PM.SCI_IRQ)
    w.u16(MPS_INTI.ACTIVE_HIGH | MPS_INTI.LEVEL)
    w.u8(MADT_TYPE.LOCAL_APIC_NMI).u8(6).u8(0xff).u16(MPS_INTI.CONFORMS).u8(1) // all CPUs, LINT1
    if (anyX2apic) w.u8(MADT_TYPE.LOCAL_X2APIC_NMI).u8(12).u16(MPS_INTI.CONFORMS).u32(0xffff_ffff).u8(1).zeros(3)
  })
}
