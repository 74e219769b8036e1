/**
 * The ACPI fixed-hardware registers our FADT announces (arch/x86_64/acpi/fadt.ts; ports in arch/x86_64/platform.ts):
 * PM1a status/enable (ACPI 6.5 §4.8.3.1), PM1a control (§4.8.3.2.1) and the reset register
 * (§4.8.3.6). Its job is to turn Linux's S5 entry (acpi_power_off: SLP_TYPa = \_S5's value, then
 * SLP_EN) into `onPowerOff`, and the reset register write into `onReset`.
 *
 * Byte-addressed, so 8/16/32-bit accesses all work. Nothing ever raises an event: status reads 0
 * except what nobody sets; enable bits keep what the OS writes (ACPICA checks that GBL_EN sticks);
 * SCI_EN reads as 1 (we are always in ACPI mode, SMI_CMD = 0).
 */
import { ACPI_PM } from '../arch/x86_64/platform.js'

export const PM1_CNT = { SCI_EN: 1 << 0, SLP_TYP_SHIFT: 10, SLP_TYP_MASK: 0x7 << 10, SLP_EN: 1 << 13 } as const

export interface AcpiPmOptions {
  readonly onPowerOff?: () => void
  readonly onReset?: () => void
}

/** Port ranges to route here. */
export const ACPI_PM_PORTS: readonly { readonly base: number; readonly length: number }[] = [
  { base: ACPI_PM.PM1A_EVT, length: ACPI_PM.PM1_EVT_LEN },
  { base: ACPI_PM.PM1A_CNT, length: ACPI_PM.PM1_CNT_LEN },
  { base: ACPI_PM.RESET_REG, length: 1 },
]

export interface AcpiPmState {
  status: number
  enable: number
  control: number
}

export class AcpiPm {
  private status = 0
  private enable = 0
  private control = PM1_CNT.SCI_EN

  constructor(private readonly opts: AcpiPmOptions = {}) {}

  saveState(): AcpiPmState {
    return { status: this.status, enable: this.enable, control: this.control }
  }

  loadState(s: AcpiPmState): void {
    this.status = s.status & 0xffff
    this.enable = s.enable & 0xffff
    this.control = (s.control & 0xffff & ~PM1_CNT.SLP_EN) | PM1_CNT.SCI_EN
  }

  /** True when `port` belongs to this device. */
  static handles(port: number): boolean {
    return ACPI_PM_PORTS.some((r) => port >= r.base && port < r.base + r.length)
  }

  read(port: number, size: 1 | 2 | 4): number {
    let v = 0
    for (let i = 0; i < size; i++) v |= this.readByte(port + i) << (8 * i)
    return v >>> 0
  }

  write(port: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) this.writeByte(port + i, (value >>> (8 * i)) & 0xff)
  }

  private readByte(port: number): number {
    const P = ACPI_PM
    const off = port - P.PM1A_EVT
    if (off === 0 || off === 1) return (this.status >> (8 * off)) & 0xff
    if (off === 2 || off === 3) return (this.enable >> (8 * (off - 2))) & 0xff
    const c = port - P.PM1A_CNT
    // SLP_EN is write-only and reads as 0 (§4.8.3.2.1).
    if (c === 0 || c === 1) return ((this.control & ~PM1_CNT.SLP_EN) >> (8 * c)) & 0xff
    return 0xff // reset register and strays: not readable
  }

  private writeByte(port: number, v: number): void {
    const P = ACPI_PM
    const off = port - P.PM1A_EVT
    if (off === 0 || off === 1)
      this.status &= ~(v << (8 * off)) // write 1 to clear
    else if (off === 2 || off === 3) this.enable = (this.enable & ~(0xff << (8 * (off - 2)))) | (v << (8 * (off - 2)))
    else if (port === P.PM1A_CNT) this.control = (this.control & 0xff00) | v | PM1_CNT.SCI_EN
    else if (port === P.PM1A_CNT + 1) {
      this.control = (this.control & 0x00ff) | (v << 8)
      const slpTyp = (this.control & PM1_CNT.SLP_TYP_MASK) >> PM1_CNT.SLP_TYP_SHIFT
      if (this.control & PM1_CNT.SLP_EN && slpTyp === P.S5_SLP_TYP) this.opts.onPowerOff?.()
      this.control &= ~PM1_CNT.SLP_EN
    } else if (port === P.RESET_REG && v === P.RESET_VALUE) this.opts.onReset?.()
  }
}
