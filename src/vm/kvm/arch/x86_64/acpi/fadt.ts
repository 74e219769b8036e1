/**
 * FADT (ACPI 6.5 §5.2.9) and FACS (§5.2.10).
 *
 * Choice: a legacy (not HW_REDUCED_ACPI) PC FADT, no PM timer, with a PM1a event block and PM1a
 * control block on I/O ports the VMM traps (platform.ts ACPI_PM, ../../legacy/acpi-pm.ts), and a DSDT
 * whose only object is \_S5. Why:
 * - Power-off. Linux installs acpi_power_off as pm_power_off when \_S5 evaluates and the FADT
 *   gives it a way to enter S5; it then writes SLP_TYPx|SLP_EN to PM1a_CNT (§4.8.3.2.1, §7.4.2).
 *   One trapped 16-bit port write is the simplest exit signal a VMM can get. The reset register
 *   (RESET_REG_SUP) gives `reboot` the same shape.
 * - Legacy, not HW-reduced: in HW-reduced mode Linux (arch/x86/kernel/acpi/boot.c,
 *   acpi_generic_reduced_hw_init) drops the legacy PIC and the PIT timer init, so ISA IRQs are no
 *   longer identity-mapped: the UART and the `virtio_mmio.device=` IRQs would have to be described
 *   in AML (_CRS), and power-off would need the ACPI 5 sleep control/status registers instead.
 *   Keeping the PC shape keeps COM1/IRQ4 and ISA IRQ numbers working with no AML beyond \_S5.
 * - SMI_CMD = 0 means "always in ACPI mode" (§5.2.9, SMI_CMD), so no ACPI_ENABLE handshake and
 *   SCI_EN is never polled. The SCI (IRQ 9) is hooked but never raised: no GPE blocks, no fixed
 *   events we generate. The VMM must keep PM1 enable bits as written (Linux checks the global-lock
 *   enable bit sticks) and read SCI_EN as 1.
 * - No PM timer (PM_TMR_LEN = 0, optional since ACPI 5): kvmclock/TSC are the clocksources.
 * - IAPC_BOOT_ARCH says: no VGA, no CMOS RTC (Linux then never touches ports 0x70/0x71; wall
 *   time comes from kvmclock), no 8042 (the i8042 driver skips probing; `reboot=k` still works).
 */
import { ACPI_PM } from '../platform.js'
import { ACCESS_SIZE, ADDRESS_SPACE, ByteWriter, type GenericAddress, NULL_GAS, sdt, writeGas } from './sdt.js'

export const FADT_REVISION = 6
export const FADT_MINOR_REVISION = 3
export const FADT_SIZE = 276

/** FADT Flags (§5.2.9 Table 5.10). */
export const FADT_FLAGS = {
  WBINVD: 1 << 0,
  PROC_C1: 1 << 2,
  PWR_BUTTON: 1 << 4, // set = no fixed-feature power button
  SLP_BUTTON: 1 << 5, // set = no fixed-feature sleep button
  RESET_REG_SUP: 1 << 10,
  HW_REDUCED_ACPI: 1 << 20,
} as const

/** IA-PC Boot Architecture Flags (§5.2.9.3). */
export const IAPC_BOOT_ARCH = {
  LEGACY_DEVICES: 1 << 0,
  I8042: 1 << 1,
  VGA_NOT_PRESENT: 1 << 2,
  MSI_NOT_SUPPORTED: 1 << 3,
  CMOS_RTC_NOT_PRESENT: 1 << 5,
} as const

export interface FadtOptions {
  readonly facsAddress: number
  readonly dsdtAddress: number
}

const io = (address: number, bytes: number): GenericAddress => ({
  space: ADDRESS_SPACE.SYSTEM_IO,
  bitWidth: bytes * 8,
  accessSize: ACCESS_SIZE.UNDEFINED,
  address,
})

export function buildFadt(o: FadtOptions): Uint8Array {
  const P = ACPI_PM
  return sdt('FACP', FADT_REVISION, (w) => {
    w.u32(o.facsAddress) // 36 FIRMWARE_CTRL
    w.u32(o.dsdtAddress) // 40 DSDT
    w.u8(0) // 44 reserved (ACPI 1.0 INT_MODEL)
    w.u8(0) // 45 Preferred_PM_Profile: unspecified
    w.u16(P.SCI_IRQ) // 46 SCI_INT
    w.u32(0) // 48 SMI_CMD: none, always in ACPI mode
    w.u8(0).u8(0).u8(0).u8(0) // 52 ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
    w.u32(P.PM1A_EVT) // 56 PM1a_EVT_BLK
    w.u32(0) // 60 PM1b_EVT_BLK
    w.u32(P.PM1A_CNT) // 64 PM1a_CNT_BLK
    w.u32(0) // 68 PM1b_CNT_BLK
    w.u32(0) // 72 PM2_CNT_BLK
    w.u32(0) // 76 PM_TMR_BLK: absent
    w.u32(0).u32(0) // 80 GPE0_BLK, 84 GPE1_BLK
    w.u8(P.PM1_EVT_LEN).u8(P.PM1_CNT_LEN).u8(0).u8(0) // 88 PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
    w.u8(0).u8(0).u8(0).u8(0) // 92 GPE0_BLK_LEN, GPE1_BLK_LEN, GPE1_BASE, CST_CNT
    w.u16(0x65).u16(0x3e9) // 96 P_LVL2_LAT > 100, P_LVL3_LAT > 1000: C2/C3 unsupported
    w.u16(0).u16(0) // 100 FLUSH_SIZE, FLUSH_STRIDE
    w.u8(0).u8(0) // 104 DUTY_OFFSET, DUTY_WIDTH
    w.u8(0).u8(0).u8(0) // 106 DAY_ALRM, MON_ALRM, CENTURY (no RTC)
    w.u16(IAPC_BOOT_ARCH.VGA_NOT_PRESENT | IAPC_BOOT_ARCH.CMOS_RTC_NOT_PRESENT) // 109 IAPC_BOOT_ARCH
    w.u8(0) // 111 reserved
    w.u32(FADT_FLAGS.WBINVD | FADT_FLAGS.PROC_C1 | FADT_FLAGS.PWR_BUTTON | FADT_FLAGS.SLP_BUTTON | FADT_FLAGS.RESET_REG_SUP) // 112
    writeGas(w, { ...io(P.RESET_REG, 1), accessSize: ACCESS_SIZE.BYTE }) // 116 RESET_REG
    w.u8(P.RESET_VALUE) // 128 RESET_VALUE
    w.u16(0) // 129 ARM_BOOT_ARCH
    w.u8(FADT_MINOR_REVISION) // 131
    w.u64(o.facsAddress) // 132 X_FIRMWARE_CTRL
    w.u64(o.dsdtAddress) // 140 X_DSDT
    writeGas(w, io(P.PM1A_EVT, P.PM1_EVT_LEN)) // 148 X_PM1a_EVT_BLK
    writeGas(w, NULL_GAS) // 160 X_PM1b_EVT_BLK
    writeGas(w, io(P.PM1A_CNT, P.PM1_CNT_LEN)) // 172 X_PM1a_CNT_BLK
    writeGas(w, NULL_GAS) // 184 X_PM1b_CNT_BLK
    writeGas(w, NULL_GAS) // 196 X_PM2_CNT_BLK
    writeGas(w, NULL_GAS) // 208 X_PM_TMR_BLK
    writeGas(w, NULL_GAS) // 220 X_GPE0_BLK
    writeGas(w, NULL_GAS) // 232 X_GPE1_BLK
    writeGas(w, NULL_GAS) // 244 SLEEP_CONTROL_REG (HW-reduced only)
    writeGas(w, NULL_GAS) // 256 SLEEP_STATUS_REG
    w.ascii('KTSTRVMM', 8) // 268 Hypervisor Vendor Identity
  })
}

export const FACS_SIZE = 64
/** The FACS must be 64-byte aligned (§5.2.10). */
export const FACS_ALIGN = 64

/** FACS: no checksum, no waking vector (we never resume from S3), global lock word unused. */
export function buildFacs(): Uint8Array {
  const w = new ByteWriter()
  w.ascii('FACS', 4).u32(FACS_SIZE) // signature, length
  w.u32(0) // hardware signature
  w.u32(0) // firmware waking vector
  w.u32(0) // global lock
  w.u32(0) // flags
  w.u64(0) // X firmware waking vector
  w.u8(2) // version
  w.zeros(3) // reserved
  w.u32(0) // OSPM flags
  w.zeros(24) // reserved
  return w.toBytes()
}
