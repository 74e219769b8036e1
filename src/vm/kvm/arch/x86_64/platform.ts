/**
 * The I/O ports and IRQs of our x86 guest platform (memory addresses are in memory/layout.ts).
 * A legacy PC, trimmed: in-kernel PIC + IO-APIC + PIT (KVM), one 16550A UART, an ACPI PM block
 * for power-off, virtio-mmio devices; no PCI, no RTC, no i8042 (but its reset command is trapped,
 * for `reboot=k`).
 */
export const COM1 = { port: 0x3f8, irq: 4 } as const
export const UART_PORT_COUNT = 8

/**
 * ACPI fixed hardware, legacy (not HW-reduced) flavour: PM1a event block (status + enable, 4
 * bytes) and PM1a control block (2 bytes), plus the FADT reset register. The VMM traps these ports
 * (legacy/acpi-pm.ts). See acpi/fadt.ts for why this shape.
 */
export const ACPI_PM = {
  PM1A_EVT: 0x600,
  PM1_EVT_LEN: 4,
  PM1A_CNT: 0x604,
  PM1_CNT_LEN: 2,
  RESET_REG: 0x606,
  RESET_VALUE: 0x01,
  /** SLP_TYPx the DSDT's \_S5 package announces; SLP_EN with this type means power off. */
  S5_SLP_TYP: 5,
  /** The SCI is never raised (no fixed or GPE events) but Linux needs a line to hook. */
  SCI_IRQ: 9,
} as const

/** i8042 command port; writing 0xfe there pulses the CPU reset line (Linux `reboot=k`). */
export const I8042_COMMAND_PORT = 0x64
export const I8042_RESET_CPU = 0xfe

/** The KVM in-kernel IO-APIC: id 0, 24 pins, GSI base 0. */
export const IOAPIC_ID = 0
export const IOAPIC_PINS = 24
