/**
 * bzImage parsing per the Linux x86 boot protocol (Documentation/arch/x86/boot.rst, "The real-mode
 * kernel header"). Offsets are from the start of the file, which are also the offsets inside
 * struct boot_params (the header lives at 0x1f1 in both).
 */
import { KtstrError } from '../../../../../util/errors.js'

/** Setup header field offsets (boot.rst table; the same in the zero page). */
export const HDR = {
  SETUP_SECTS: 0x1f1,
  ROOT_FLAGS: 0x1f2,
  SYSSIZE: 0x1f4,
  VID_MODE: 0x1fa,
  BOOT_FLAG: 0x1fe,
  JUMP: 0x200,
  HEADER: 0x202,
  VERSION: 0x206,
  KERNEL_VERSION: 0x20e,
  TYPE_OF_LOADER: 0x210,
  LOADFLAGS: 0x211,
  CODE32_START: 0x214,
  RAMDISK_IMAGE: 0x218,
  RAMDISK_SIZE: 0x21c,
  HEAP_END_PTR: 0x224,
  CMD_LINE_PTR: 0x228,
  INITRD_ADDR_MAX: 0x22c,
  KERNEL_ALIGNMENT: 0x230,
  RELOCATABLE_KERNEL: 0x234,
  MIN_ALIGNMENT: 0x235,
  XLOADFLAGS: 0x236,
  CMDLINE_SIZE: 0x238,
  PAYLOAD_OFFSET: 0x248,
  PAYLOAD_LENGTH: 0x24c,
  SETUP_DATA: 0x250,
  PREF_ADDRESS: 0x258,
  INIT_SIZE: 0x260,
  HANDOVER_OFFSET: 0x264,
  KERNEL_INFO_OFFSET: 0x268,
} as const

export const BOOT_FLAG_MAGIC = 0xaa55
/** "HdrS" read as a little-endian u32. */
export const HEADER_MAGIC = 0x53726448

export const LOADFLAGS = { LOADED_HIGH: 0x01, KASLR_FLAG: 0x02, QUIET_FLAG: 0x20, KEEP_SEGMENTS: 0x40, CAN_USE_HEAP: 0x80 } as const
export const XLF = {
  KERNEL_64: 1 << 0,
  CAN_BE_LOADED_ABOVE_4G: 1 << 1,
  EFI_HANDOVER_32: 1 << 2,
  EFI_HANDOVER_64: 1 << 3,
  EFI_KEXEC: 1 << 4,
  FIVE_LEVEL: 1 << 5,
  FIVE_LEVEL_ENABLED: 1 << 6,
} as const

/** Boot protocol 2.12 introduced xloadflags and with it the advertised 64-bit entry. */
export const MIN_BOOT_PROTOCOL = 0x020c

export interface SetupHeader {
  setupSects: number
  syssize: number
  vidMode: number
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  version: number
  loadflags: number
  code32Start: number
  initrdAddrMax: number
  kernelAlignment: number
  relocatableKernel: boolean
  minAlignment: number
  xloadflags: number
  cmdlineSize: number
  payloadOffset: number
  payloadLength: number
  /** Where a non-relocatable kernel must be loaded (LOAD_PHYSICAL_ADDR). */
  prefAddress: number
  /** Bytes the kernel needs from its load address while it decompresses and boots. */
  initSize: number
  handoverOffset: number
  kernelInfoOffset: number
}

export interface BzImage {
  readonly header: SetupHeader
  /** The raw setup header, file bytes [0x1f1, 0x202 + byte at 0x201), to copy into the zero page. */
  readonly setupHeaderBytes: Uint8Array
  /** The protected-mode kernel: everything after the real-mode setup sectors. */
  readonly kernel: Uint8Array
  /** The kernel_version string (e.g. "6.12.117 (user@host) #1 SMP ..."), or undefined. */
  readonly kernelVersion: string | undefined
}

export function parseBzImage(bytes: Uint8Array, label = 'kernel image'): BzImage {
  const fix = 'point the VM at an x86_64 bzImage (arch/x86/boot/bzImage)'
  if (bytes.length < 0x270) throw new KtstrError(`${label} is too short to be a bzImage; ${fix}`)
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const u8 = (o: number) => dv.getUint8(o)
  const u16 = (o: number) => dv.getUint16(o, true)
  const u32 = (o: number) => dv.getUint32(o, true)
  if (u32(HDR.HEADER) !== HEADER_MAGIC || u16(HDR.BOOT_FLAG) !== BOOT_FLAG_MAGIC) {
    throw new KtstrError(`${label} is not a bzImage (no "HdrS" setup header); ${fix}`)
  }
  const version = u16(HDR.VERSION)
  const xloadflags = u16(HDR.XLOADFLAGS)
  const v = `${version >> 8}.${String(version & 0xff).padStart(2, '0')}`
  if (version < MIN_BOOT_PROTOCOL) {
    throw new KtstrError(`${label} speaks boot protocol ${v}; the kvm backend needs 2.12 or newer (Linux 3.8+), or use --backend qemu`)
  }
  if (!(xloadflags & XLF.KERNEL_64)) {
    throw new KtstrError(`${label} has no 64-bit entry point (XLF_KERNEL_64); build an x86_64 kernel`)
  }
  const loadflags = u8(HDR.LOADFLAGS)
  if (!(loadflags & LOADFLAGS.LOADED_HIGH)) throw new KtstrError(`${label} is a zImage, not a bzImage; ${fix}`)

  const setupSects = u8(HDR.SETUP_SECTS) || 4 // 0 means 4 (boot.rst, setup_sects)
  const kernelOffset = (setupSects + 1) * 512
  if (kernelOffset >= bytes.length) throw new KtstrError(`${label} is truncated (no protected-mode kernel); ${fix}`)
  const headerEnd = HDR.HEADER + u8(HDR.JUMP + 1) // "0x0202 + byte value at offset 0x0201"

  const header: SetupHeader = {
    setupSects,
    syssize: u32(HDR.SYSSIZE),
    vidMode: u16(HDR.VID_MODE),
    version,
    loadflags,
    code32Start: u32(HDR.CODE32_START),
    initrdAddrMax: u32(HDR.INITRD_ADDR_MAX),
    kernelAlignment: u32(HDR.KERNEL_ALIGNMENT),
    relocatableKernel: u8(HDR.RELOCATABLE_KERNEL) !== 0,
    minAlignment: u8(HDR.MIN_ALIGNMENT),
    xloadflags,
    cmdlineSize: u32(HDR.CMDLINE_SIZE),
    payloadOffset: u32(HDR.PAYLOAD_OFFSET),
    payloadLength: u32(HDR.PAYLOAD_LENGTH),
    prefAddress: Number(dv.getBigUint64(HDR.PREF_ADDRESS, true)),
    initSize: u32(HDR.INIT_SIZE),
    handoverOffset: u32(HDR.HANDOVER_OFFSET),
    kernelInfoOffset: u32(HDR.KERNEL_INFO_OFFSET),
  }
  return {
    header,
    setupHeaderBytes: bytes.subarray(HDR.SETUP_SECTS, headerEnd),
    kernel: bytes.subarray(kernelOffset),
    kernelVersion: readKernelVersion(bytes, u16(HDR.KERNEL_VERSION)),
  }
}

/** kernel_version points, minus 0x200, at a NUL-terminated string in the setup code. */
function readKernelVersion(bytes: Uint8Array, ptr: number): string | undefined {
  if (ptr === 0) return undefined
  const start = ptr + 0x200
  const end = bytes.indexOf(0, start)
  if (start >= bytes.length || end < 0 || end - start > 512) return undefined
  return new TextDecoder('latin1').decode(bytes.subarray(start, end))
}
