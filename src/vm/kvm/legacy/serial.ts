/**
 * An 8250/16550A UART (the register set of the NS16550A / TI PC16550D data sheets) for the guest
 * console on COM1 (arch/x86_64/platform.ts: port 0x3f8, IRQ 4). Transmission is instantaneous: THR is always
 * empty (LSR.THRE|TEMT), so every byte written goes straight to `onOutput`. The FIFO exists as far
 * as a driver can tell (IIR reports FIFOs enabled after FCR bit 0), which is what makes Linux's
 * autoconfig say 16550A.
 *
 * Interrupts follow the data sheet: the THRE interrupt is raised when THR empties (after every
 * transmitted byte) and when IER.ETBEI goes from 0 to 1 while THR is empty; it is cleared by
 * reading IIR while it is the reported source, or by writing THR. Linux's startup test
 * (serial8250_do_startup: IER=THRI, read IIR, IER=0, IER=THRI, read IIR) depends on that re-arming.
 * `onInterrupt(level)` reports the line level whenever it changes; wire it to KVM_IRQ_LINE.
 * MCR.OUT2 does not gate the line (as in QEMU).
 */
export const UART_REG = {
  RBR_THR_DLL: 0,
  IER_DLM: 1,
  IIR_FCR: 2,
  LCR: 3,
  MCR: 4,
  LSR: 5,
  MSR: 6,
  SCR: 7,
} as const

export const IER = { ERBFI: 0x01, ETBEI: 0x02, ELSI: 0x04, EDSSI: 0x08 } as const
export const IIR = { NO_INT: 0x01, MSI: 0x00, THRI: 0x02, RDI: 0x04, RLSI: 0x06, FIFO_ENABLED: 0xc0 } as const
export const FCR = { ENABLE_FIFO: 0x01, CLEAR_RCVR: 0x02, CLEAR_XMIT: 0x04 } as const
export const LCR = { DLAB: 0x80 } as const
export const MCR = { DTR: 0x01, RTS: 0x02, OUT1: 0x04, OUT2: 0x08, LOOP: 0x10 } as const
export const LSR = { DR: 0x01, OE: 0x02, PE: 0x04, FE: 0x08, BI: 0x10, THRE: 0x20, TEMT: 0x40 } as const
export const MSR = { DCTS: 0x01, DDSR: 0x02, TERI: 0x04, DDCD: 0x08, CTS: 0x10, DSR: 0x20, RI: 0x40, DCD: 0x80 } as const

export interface SerialOptions {
  /** Each byte the guest transmits (not called in loopback mode). */
  readonly onOutput?: (byte: number) => void
  /** The interrupt line changed level. */
  readonly onInterrupt?: (level: boolean) => void
  /** Bytes of host input held for the guest; `receive` takes at most this many. Default 4096. */
  readonly rxCapacity?: number
}

/** Everything a driver can observe of the UART (a snapshot's part). */
export interface SerialState {
  ier: number
  lcr: number
  mcr: number
  scr: number
  dll: number
  dlm: number
  fifoEnabled: boolean
  thrInterrupt: boolean
  lineErrors: number
  msrDeltas: number
  rx: number[]
  level: boolean
}

export class Serial8250 {
  private ier = 0
  private lcr = 0x03 // 8N1, as after a PC BIOS
  private mcr = 0
  private scr = 0
  private dll = 0x0c // 9600 baud
  private dlm = 0
  private fifoEnabled = false
  private thrInterrupt = false
  private lineErrors = 0
  private msrDeltas = 0
  private readonly rx: number[] = []
  private level = false
  private readonly rxCapacity: number

  constructor(private readonly opts: SerialOptions = {}) {
    this.rxCapacity = opts.rxCapacity ?? 4096
  }

  /** Register read at `offset` (0-7) from the base port. */
  read(offset: number): number {
    const dlab = (this.lcr & LCR.DLAB) !== 0
    switch (offset) {
      case UART_REG.RBR_THR_DLL: {
        if (dlab) return this.dll
        const byte = this.rx.shift() ?? 0
        this.update()
        return byte
      }
      case UART_REG.IER_DLM:
        return dlab ? this.dlm : this.ier
      case UART_REG.IIR_FCR: {
        const id = this.pendingInterrupt()
        if (id === IIR.THRI) {
          this.thrInterrupt = false
          this.update()
        }
        return id | (this.fifoEnabled ? IIR.FIFO_ENABLED : 0)
      }
      case UART_REG.LCR:
        return this.lcr
      case UART_REG.MCR:
        return this.mcr
      case UART_REG.LSR: {
        const v = (this.rx.length > 0 ? LSR.DR : 0) | LSR.THRE | LSR.TEMT | this.lineErrors
        this.lineErrors = 0 // reading LSR clears the error bits
        this.update()
        return v
      }
      case UART_REG.MSR: {
        const v = this.modemStatus() | this.msrDeltas
        this.msrDeltas = 0
        this.update()
        return v
      }
      case UART_REG.SCR:
        return this.scr
      default:
        return 0xff
    }
  }

  /** Register write at `offset` (0-7) from the base port. */
  write(offset: number, value: number): void {
    const v = value & 0xff
    const dlab = (this.lcr & LCR.DLAB) !== 0
    switch (offset) {
      case UART_REG.RBR_THR_DLL:
        if (dlab) this.dll = v
        else this.transmit(v)
        break
      case UART_REG.IER_DLM:
        if (dlab) this.dlm = v
        else {
          const enabling = v & IER.ETBEI && !(this.ier & IER.ETBEI)
          this.ier = v & 0x0f // bits 4-7 are reserved and read as 0 on a 16550A
          if (enabling) this.thrInterrupt = true
        }
        break
      case UART_REG.IIR_FCR: {
        const enable = (v & FCR.ENABLE_FIFO) !== 0
        if (enable !== this.fifoEnabled || v & FCR.CLEAR_RCVR) this.rx.length = 0 // toggling FIFO mode resets it
        this.fifoEnabled = enable
        break
      }
      case UART_REG.LCR:
        this.lcr = v
        break
      case UART_REG.MCR: {
        const before = this.modemStatus()
        this.mcr = v & 0x1f
        this.noteModemChange(before, this.modemStatus())
        break
      }
      case UART_REG.SCR:
        this.scr = v
        break
      default: // LSR and MSR writes are factory-test only
        break
    }
    this.update()
  }

  /** Host input for the guest; returns how many bytes were taken (the rest: try again later). */
  receive(data: Uint8Array): number {
    const n = Math.min(data.length, this.rxCapacity - this.rx.length)
    for (let i = 0; i < n; i++) this.rx.push(data[i]!)
    if (n > 0) this.update()
    return n
  }

  saveState(): SerialState {
    const { ier, lcr, mcr, scr, dll, dlm, fifoEnabled, thrInterrupt, lineErrors, msrDeltas, level } = this
    return { ier, lcr, mcr, scr, dll, dlm, fifoEnabled, thrInterrupt, lineErrors, msrDeltas, rx: [...this.rx], level }
  }

  /** A saved state, interrupt line included: the restored interrupt controller holds its level already. */
  loadState(s: SerialState): void {
    ;({ ier: this.ier, lcr: this.lcr, mcr: this.mcr, scr: this.scr, dll: this.dll, dlm: this.dlm } = s)
    ;({ fifoEnabled: this.fifoEnabled, thrInterrupt: this.thrInterrupt, lineErrors: this.lineErrors, msrDeltas: this.msrDeltas, level: this.level } = s)
    this.rx.splice(0, this.rx.length, ...s.rx.slice(0, this.rxCapacity).map((b) => b & 0xff))
  }

  get interruptLevel(): boolean {
    return this.level
  }

  /** The baud rate divisor the driver programmed (DLM:DLL). */
  get divisor(): number {
    return (this.dlm << 8) | this.dll
  }

  get lineControl(): number {
    return this.lcr
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR.LOOP) {
      if (this.rx.length < this.rxCapacity) this.rx.push(byte)
      else this.lineErrors |= LSR.OE
    } else {
      this.opts.onOutput?.(byte)
    }
    this.thrInterrupt = true // THR is empty again at once
  }

  private modemStatus(): number {
    if (!(this.mcr & MCR.LOOP)) return MSR.DCD | MSR.DSR | MSR.CTS
    // Loopback wiring (16550 data sheet, MCR bit 4): RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
    return (this.mcr & MCR.RTS ? MSR.CTS : 0) | (this.mcr & MCR.DTR ? MSR.DSR : 0) | (this.mcr & MCR.OUT1 ? MSR.RI : 0) | (this.mcr & MCR.OUT2 ? MSR.DCD : 0)
  }

  private noteModemChange(before: number, after: number): void {
    const changed = before ^ after
    if (changed & MSR.CTS) this.msrDeltas |= MSR.DCTS
    if (changed & MSR.DSR) this.msrDeltas |= MSR.DDSR
    if (changed & MSR.DCD) this.msrDeltas |= MSR.DDCD
    if (before & MSR.RI && !(after & MSR.RI)) this.msrDeltas |= MSR.TERI
  }

  /** The highest-priority pending and enabled interrupt, as IIR bits 3:0. */
  private pendingInterrupt(): number {
    if (this.ier & IER.ELSI && this.lineErrors) return IIR.RLSI
    if (this.ier & IER.ERBFI && this.rx.length > 0) return IIR.RDI
    if (this.ier & IER.ETBEI && this.thrInterrupt) return IIR.THRI
    if (this.ier & IER.EDSSI && this.msrDeltas) return IIR.MSI
    return IIR.NO_INT
  }

  private update(): void {
    const level = this.pendingInterrupt() !== IIR.NO_INT
    if (level !== this.level) {
      this.level = level
      this.opts.onInterrupt?.(level)
    }
  }
}
