/**
 * DSDT (ACPI 6.5 §5.2.11.1). It holds only \_S5 (§7.4.2.4): Package { SLP_TYPa, SLP_TYPb, 0, 0 }.
 *
 * The virtio-mmio devices are not described here: they are announced on the kernel command line
 * (`virtio_mmio.device=`, virtio/mmio.ts), which needs no AML
 * resource templates and keeps the DSDT byte-for-byte independent of the device set.
 * (The ACPI alternative would be one `LNRO0005` device per window with a _CRS of Memory32Fixed +
 * Interrupt.) CPUs come from the MADT; no Processor objects are needed.
 */
import { ACPI_PM } from '../platform.js'
import { integer, name, packageOf } from './aml.js'
import { sdt } from './sdt.js'

/** Revision 2: integers in AML are 64-bit. */
export const DSDT_REVISION = 2

export function buildDsdt(): Uint8Array {
  const s5 = name('_S5', packageOf([integer(ACPI_PM.S5_SLP_TYP), integer(ACPI_PM.S5_SLP_TYP), integer(0), integer(0)]))
  return sdt('DSDT', DSDT_REVISION, (w) => w.bytes(s5))
}
