/**
 * RSDP (ACPI 6.5 §5.2.5.3) revision 2, pointing at the XSDT only (RSDT address 0: every ACPI 2+
 * OS, Linux included, prefers the XSDT), and the XSDT (§5.2.8).
 */
import { ByteWriter, fixChecksum, OEM_ID, sdt } from './sdt.js'

export const RSDP_SIZE = 36
export const RSDP_SIGNATURE = 'RSD PTR '

export function buildRsdp(xsdtAddress: number): Uint8Array {
  const w = new ByteWriter()
  w.ascii(RSDP_SIGNATURE, 8).u8(0).ascii(OEM_ID, 6).u8(2) // signature, checksum, OEMID, revision
  w.u32(0).u32(RSDP_SIZE).u64(xsdtAddress).u8(0).zeros(3) // RSDT, length, XSDT, extended checksum, reserved
  const out = w.toBytes()
  fixChecksum(out, 8, 0, 20) // the ACPI 1.0 part
  fixChecksum(out, 32, 0, RSDP_SIZE) // the whole structure
  return out
}

export const XSDT_REVISION = 1

export function buildXsdt(tableAddresses: readonly number[]): Uint8Array {
  return sdt('XSDT', XSDT_REVISION, (w) => {
    for (const a of tableAddresses) w.u64(a)
  })
}
