import { describe, expect, it } from 'vitest'
import { FCR, IER, IIR, LCR, LSR, MCR, MSR, UART_REG as R, Serial8250 } from '../../../src/vm/kvm/legacy/serial.js'

function uart() {
  const out: number[] = []
  const edges: boolean[] = []
  const u = new Serial8250({ onOutput: (b) => out.push(b), onInterrupt: (l) => edges.push(l) })
  return { u, out, edges }
}

describe('8250/16550A UART as Linux probes it', () => {
  it('passes the scratch, IER and loopback existence tests (8250_port.c autoconfig)', () => {
    const { u } = uart()
    for (const v of [0x55, 0xaa]) {
      u.write(R.SCR, v)
      expect(u.read(R.SCR)).toBe(v)
    }
    u.write(R.IER_DLM, 0)
    expect(u.read(R.IER_DLM) & 0x0f).toBe(0)
    u.write(R.IER_DLM, 0x0f)
    expect(u.read(R.IER_DLM) & 0x0f).toBe(0x0f)
    u.write(R.IER_DLM, 0xff)
    expect(u.read(R.IER_DLM)).toBe(0x0f) // UUE and friends do not stick: not an XScale UART
    u.write(R.IER_DLM, 0)
    // Loopback: MCR = LOOP | OUT2 | RTS must read back as DCD | CTS in MSR's top nibble.
    u.write(R.MCR, MCR.LOOP | MCR.OUT2 | MCR.RTS)
    expect(u.read(R.MSR) & 0xf0).toBe(MSR.DCD | MSR.CTS)
    u.write(R.MCR, 0)
    expect(u.read(R.MSR) & 0xf0).toBe(MSR.DCD | MSR.DSR | MSR.CTS)
  })

  it('identifies as a 16550A: FIFO bits in IIR after FCR enable, no EFR, no 64-byte FIFO', () => {
    const { u } = uart()
    u.write(R.LCR, 0xbf) // UART_LCR_CONF_MODE_B
    u.write(R.IIR_FCR, 0) // EFR on enhanced parts, FCR here
    u.write(R.LCR, 0)
    u.write(R.IIR_FCR, FCR.ENABLE_FIFO)
    expect(u.read(R.IIR_FCR) >> 6).toBe(3) // "16550A or better"
    u.write(R.LCR, 0x80)
    expect(u.read(R.IIR_FCR)).not.toBe(0) // EFR probe under DLAB reads nonzero: no ST16C650V1
    u.write(R.LCR, 0)
    u.write(R.IIR_FCR, FCR.ENABLE_FIFO | 0x20) // UART_FCR7_64BYTE
    expect(u.read(R.IIR_FCR) & 0x20).toBe(0) // not a 16750
    u.write(R.IIR_FCR, 0)
    expect(u.read(R.IIR_FCR) & IIR.FIFO_ENABLED).toBe(0)
  })

  it('programs the divisor through DLAB', () => {
    const { u } = uart()
    u.write(R.IER_DLM, IER.ERBFI)
    u.write(R.LCR, LCR.DLAB | 0x03)
    u.write(R.RBR_THR_DLL, 0x01) // 115200 baud
    u.write(R.IER_DLM, 0x00)
    expect(u.read(R.RBR_THR_DLL)).toBe(0x01)
    expect(u.read(R.IER_DLM)).toBe(0x00)
    u.write(R.LCR, 0x03)
    expect(u.divisor).toBe(1)
    expect(u.lineControl).toBe(0x03)
    expect(u.read(R.IER_DLM)).toBe(IER.ERBFI) // IER untouched by the DLM write
  })

  it('re-asserts THRE when THRI is enabled again (serial8250_do_startup THRE test)', () => {
    const { u, edges } = uart()
    expect(u.read(R.LSR) & (LSR.THRE | LSR.TEMT)).toBe(LSR.THRE | LSR.TEMT)
    u.write(R.IER_DLM, IER.ETBEI)
    const iir1 = u.read(R.IIR_FCR)
    u.write(R.IER_DLM, 0)
    u.write(R.IER_DLM, IER.ETBEI)
    const iir = u.read(R.IIR_FCR)
    u.write(R.IER_DLM, 0)
    // Linux sets UART_BUG_THRE when !(iir1 & NO_INT) && (iir & NO_INT); a real 16550 shows THRI twice.
    expect(iir1 & 0x0f).toBe(IIR.THRI)
    expect(iir & 0x0f).toBe(IIR.THRI)
    expect(edges).toEqual([true, false, true, false])
    // Reading IIR cleared it: nothing pending now even with THRI enabled again... until THR empties.
    u.write(R.IER_DLM, IER.ETBEI)
    expect(u.read(R.IIR_FCR) & 0x0f).toBe(IIR.THRI)
    expect(u.read(R.IIR_FCR) & 0x0f).toBe(IIR.NO_INT)
  })

  it('transmits bytes at once and raises a THRE interrupt after each', () => {
    const { u, out, edges } = uart()
    u.write(R.IER_DLM, IER.ETBEI)
    edges.length = 0
    expect(u.read(R.IIR_FCR) & 0x0f).toBe(IIR.THRI) // the ISR reads IIR, then refills THR
    for (const b of Buffer.from('ok\n')) {
      u.write(R.RBR_THR_DLL, b)
      expect(u.interruptLevel).toBe(true)
      expect(u.read(R.IIR_FCR) & 0x0f).toBe(IIR.THRI)
    }
    expect(Buffer.from(out).toString()).toBe('ok\n')
    expect(edges).toEqual([false, true, false, true, false, true, false])
  })

  it('delivers host input with a receive interrupt', () => {
    const { u, edges } = uart()
    expect(u.receive(Buffer.from('ab'))).toBe(2)
    expect(u.read(R.LSR) & LSR.DR).toBe(LSR.DR)
    expect(edges).toEqual([]) // ERBFI still off
    u.write(R.IER_DLM, IER.ERBFI)
    expect(edges).toEqual([true])
    expect(u.read(R.IIR_FCR) & 0x0f).toBe(IIR.RDI)
    expect(u.read(R.RBR_THR_DLL)).toBe(0x61)
    expect(u.read(R.RBR_THR_DLL)).toBe(0x62)
    expect(u.read(R.LSR) & LSR.DR).toBe(0)
    expect(edges).toEqual([true, false])
    expect(new Serial8250({ rxCapacity: 3 }).receive(Buffer.from('abcdef'))).toBe(3)
  })

  it('loops transmitted bytes back to the receiver in loopback mode', () => {
    const { u, out } = uart()
    u.write(R.MCR, MCR.LOOP)
    u.write(R.RBR_THR_DLL, 0x42)
    expect(out).toEqual([])
    expect(u.read(R.LSR) & LSR.DR).toBe(LSR.DR)
    expect(u.read(R.RBR_THR_DLL)).toBe(0x42)
    u.write(R.IIR_FCR, FCR.ENABLE_FIFO)
    u.write(R.RBR_THR_DLL, 0x43)
    u.write(R.IIR_FCR, FCR.ENABLE_FIFO | FCR.CLEAR_RCVR)
    expect(u.read(R.LSR) & LSR.DR).toBe(0)
  })
})

describe('8250 UART in a snapshot', () => {
  it('a fresh UART given the saved state reads as the saved one did, pending interrupt and received bytes included', () => {
    const { u } = uart()
    u.write(R.LCR, LCR.DLAB | 0x03)
    u.write(R.RBR_THR_DLL, 0x01) // 115200 baud
    u.write(R.IER_DLM, 0x00)
    u.write(R.LCR, 0x03)
    u.write(R.IIR_FCR, FCR.ENABLE_FIFO)
    u.write(R.MCR, MCR.DTR | MCR.RTS | MCR.OUT2)
    u.write(R.SCR, 0x5a)
    u.write(R.IER_DLM, IER.ETBEI | IER.ERBFI)
    u.receive(Uint8Array.of(0x41, 0x42))
    expect(u.interruptLevel).toBe(true)

    const edges: boolean[] = []
    const v = new Serial8250({ onInterrupt: (l) => edges.push(l) })
    v.loadState(JSON.parse(JSON.stringify(u.saveState())))
    expect(edges).toEqual([]) // the restored interrupt controller already holds the line's level
    expect(v.interruptLevel).toBe(true)
    expect(v.divisor).toBe(1)
    for (const reg of [R.LCR, R.MCR, R.SCR, R.IER_DLM]) expect(v.read(reg)).toBe(u.read(reg))
    expect(v.read(R.IIR_FCR)).toBe(IIR.RDI | IIR.FIFO_ENABLED)
    expect([v.read(R.RBR_THR_DLL), v.read(R.RBR_THR_DLL)]).toEqual([0x41, 0x42])
    // With the bytes read, the THR-empty interrupt is next, as on the saved UART.
    expect(v.read(R.IIR_FCR)).toBe(IIR.THRI | IIR.FIFO_ENABLED)
    expect(v.read(R.LSR) & (LSR.DR | LSR.THRE)).toBe(LSR.THRE)
  })
})
