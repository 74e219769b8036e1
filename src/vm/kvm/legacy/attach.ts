/**
 * The legacy PC devices on the I/O port bus: the COM1 UART (the kernel console, line-buffered into
 * the console log), the ACPI PM block (power-off and reset) and the i8042's CPU-reset command
 * (`reboot=k`). A port write that powers off or resets returns the stop reason to the bus, which
 * ends the vCPU that made it.
 */
import type { ConsoleLog } from '../../console.js'
import { COM1, I8042_COMMAND_PORT, I8042_RESET_CPU, UART_PORT_COUNT } from '../arch/x86_64/platform.js'
import type { Bus } from '../io-bus.js'
import { ACPI_PM_PORTS, AcpiPm, type AcpiPmState } from './acpi-pm.js'
import { Serial8250, type SerialState } from './serial.js'

/** The legacy devices' state (a snapshot's part). */
export interface LegacyState {
  serial: SerialState
  pm: AcpiPmState
}

export interface LegacyDevices {
  /** Flush the UART's partial line (call once the vCPUs stopped). */
  flush(): void
  saveState(): LegacyState
  loadState(s: LegacyState): void
}

export function attachLegacyDevices(io: Bus, o: { irqLine: (irq: number, level: 0 | 1) => void; console: ConsoleLog }): LegacyDevices {
  let line: number[] = []
  const flush = () => {
    if (line.length) o.console.push(Buffer.from(line))
    line = []
  }
  const serial = new Serial8250({
    onOutput: (b) => {
      line.push(b)
      if (b === 10 || line.length > 4096) flush()
    },
    onInterrupt: (level) => o.irqLine(COM1.irq, level ? 1 : 0),
  })
  io.add('com1', COM1.port, UART_PORT_COUNT, {
    read: (off) => serial.read(off),
    write: (off, _size, v) => serial.write(off, Number(v)),
  })

  let stopReason: 'power-off' | 'reset' | undefined
  const pm = new AcpiPm({ onPowerOff: () => (stopReason = 'power-off'), onReset: () => (stopReason = 'reset') })
  for (const r of ACPI_PM_PORTS) {
    io.add(`acpi-pm@${r.base.toString(16)}`, r.base, r.length, {
      read: (off, size) => pm.read(r.base + off, size as 1 | 2 | 4),
      write: (off, size, v) => {
        pm.write(r.base + off, size as 1 | 2 | 4, Number(v))
        return stopReason
      },
    })
  }

  // The keyboard controller's status reads as idle (0); only its reset command does anything.
  io.add('i8042', I8042_COMMAND_PORT, 1, {
    read: () => 0,
    write: (_off, _size, v) => (Number(v) === I8042_RESET_CPU ? 'reset' : undefined),
  })
  return {
    flush,
    saveState: () => ({ serial: serial.saveState(), pm: pm.saveState() }),
    loadState: (s) => {
      serial.loadState(s.serial)
      pm.loadState(s.pm)
    },
  }
}
