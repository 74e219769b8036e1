/**
 * struct boot_params, "the zero page" (Documentation/arch/x86/zero-page.rst), built for the
 * 64-bit boot protocol: the kernel's own setup header copied in, then the fields a boot loader
 * fills (boot.rst, "Details of header fields": type_of_loader, cmd_line_ptr, ramdisk_*, vid_mode)
 * and the e820 map and RSDP address.
 */
import { HDR } from './bzimage.js'
import { E820_MAX_ZERO_PAGE_ENTRIES, type E820Entry } from './e820.js'

export const ZERO_PAGE_SIZE = 4096

/** boot_params offsets outside the setup header (zero-page.rst). */
export const ZP = {
  ACPI_RSDP_ADDR: 0x070,
  EXT_RAMDISK_IMAGE: 0x0c0,
  EXT_RAMDISK_SIZE: 0x0c4,
  EXT_CMD_LINE_PTR: 0x0c8,
  E820_ENTRIES: 0x1e8,
  SENTINEL: 0x1ef,
  E820_TABLE: 0x2d0,
  E820_ENTRY_SIZE: 20,
} as const

/** Boot loader id "undefined" (boot.rst, type_of_loader: 0xff). */
export const LOADER_TYPE_UNDEFINED = 0xff
/** vid_mode 0xffff = "normal" (boot.rst, vid_mode). The 64-bit entry skips video setup anyway. */
export const VID_MODE_NORMAL = 0xffff

export interface ZeroPageOptions {
  /** The kernel's setup header bytes (BzImage.setupHeaderBytes), copied to 0x1f1. */
  readonly setupHeader: Uint8Array
  readonly cmdlineAddress: number
  readonly initrd?: { readonly address: number; readonly size: number }
  readonly e820: readonly E820Entry[]
  /** boot_params.acpi_rsdp_addr (protocol 2.14+); older kernels scan 0xe0000 for the RSDP. */
  readonly rsdpAddress?: number
}

export function buildZeroPage(o: ZeroPageOptions): Uint8Array {
  if (o.e820.length > E820_MAX_ZERO_PAGE_ENTRIES) throw new RangeError(`${o.e820.length} e820 entries do not fit the zero page`)
  const zp = new Uint8Array(ZERO_PAGE_SIZE)
  const dv = new DataView(zp.buffer)
  zp.set(o.setupHeader, HDR.SETUP_SECTS)

  dv.setUint8(HDR.TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED)
  dv.setUint16(HDR.VID_MODE, VID_MODE_NORMAL, true)
  setSplit(dv, HDR.CMD_LINE_PTR, ZP.EXT_CMD_LINE_PTR, o.cmdlineAddress)
  if (o.initrd) {
    setSplit(dv, HDR.RAMDISK_IMAGE, ZP.EXT_RAMDISK_IMAGE, o.initrd.address)
    setSplit(dv, HDR.RAMDISK_SIZE, ZP.EXT_RAMDISK_SIZE, o.initrd.size)
  }
  if (o.rsdpAddress !== undefined) dv.setBigUint64(ZP.ACPI_RSDP_ADDR, BigInt(o.rsdpAddress), true)

  dv.setUint8(ZP.E820_ENTRIES, o.e820.length)
  o.e820.forEach((e, i) => {
    const at = ZP.E820_TABLE + i * ZP.E820_ENTRY_SIZE // struct boot_e820_entry { u64 addr; u64 size; u32 type } packed
    dv.setBigUint64(at, BigInt(e.addr), true)
    dv.setBigUint64(at + 8, BigInt(e.size), true)
    dv.setUint32(at + 16, e.type, true)
  })
  return zp
}

/** A 64-bit value stored as the header's low 32 bits plus the zero page's ext_* high 32 bits. */
function setSplit(dv: DataView, lowAt: number, highAt: number, value: number): void {
  dv.setUint32(lowAt, value % 0x1_0000_0000, true)
  dv.setUint32(highAt, Math.floor(value / 0x1_0000_0000), true)
}
