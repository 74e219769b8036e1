import { describe, expect, it } from 'vitest'
import { ACPI_PM } from '../../../src/vm/kvm/arch/x86_64/platform.js'
import { AcpiPm, PM1_CNT } from '../../../src/vm/kvm/legacy/acpi-pm.js'

const P = ACPI_PM

function pm() {
  const events: string[] = []
  const d = new AcpiPm({ onPowerOff: () => events.push('off'), onReset: () => events.push('reset') })
  return { d, events }
}

describe('ACPI PM1 registers', () => {
  it('reads SCI_EN as set and keeps enable bits (ACPICA checks GBL_EN sticks)', () => {
    const { d } = pm()
    expect(d.read(P.PM1A_CNT, 2) & PM1_CNT.SCI_EN).toBe(PM1_CNT.SCI_EN)
    d.write(P.PM1A_EVT + 2, 2, 0x0020) // GBL_EN
    expect(d.read(P.PM1A_EVT + 2, 2)).toBe(0x0020)
    d.write(P.PM1A_EVT, 2, 0xffff) // clear all status bits
    expect(d.read(P.PM1A_EVT, 4)).toBe(0x0020_0000) // status 0, enable kept (32-bit read of the block)
    d.write(P.PM1A_CNT, 2, 0) // the OS cannot turn SCI_EN off: we have no legacy mode
    expect(d.read(P.PM1A_CNT, 2) & PM1_CNT.SCI_EN).toBe(PM1_CNT.SCI_EN)
  })

  it('powers off on SLP_TYP = \\_S5 plus SLP_EN, as acpi_hw_legacy_sleep writes them', () => {
    const { d, events } = pm()
    const cnt = d.read(P.PM1A_CNT, 2) & ~(PM1_CNT.SLP_TYP_MASK | PM1_CNT.SLP_EN)
    const typ = cnt | (P.S5_SLP_TYP << PM1_CNT.SLP_TYP_SHIFT)
    d.write(P.PM1A_CNT, 2, typ) // first SLP_TYP alone
    expect(events).toEqual([])
    d.write(P.PM1A_CNT, 2, typ | PM1_CNT.SLP_EN) // then with SLP_EN
    expect(events).toEqual(['off'])
    expect(d.read(P.PM1A_CNT, 2) & PM1_CNT.SLP_EN).toBe(0) // write-only bit
  })

  it('ignores other sleep types and handles byte-wide access', () => {
    const { d, events } = pm()
    d.write(P.PM1A_CNT, 2, (3 << PM1_CNT.SLP_TYP_SHIFT) | PM1_CNT.SLP_EN) // S3: not offered
    expect(events).toEqual([])
    d.write(P.PM1A_CNT + 1, 1, ((P.S5_SLP_TYP << PM1_CNT.SLP_TYP_SHIFT) | PM1_CNT.SLP_EN) >> 8)
    expect(events).toEqual(['off'])
  })

  it('resets through the FADT reset register', () => {
    const { d, events } = pm()
    d.write(P.RESET_REG, 1, 0x55)
    expect(events).toEqual([])
    d.write(P.RESET_REG, 1, P.RESET_VALUE)
    expect(events).toEqual(['reset'])
    expect(AcpiPm.handles(P.RESET_REG)).toBe(true)
    expect(AcpiPm.handles(P.PM1A_EVT + 3)).toBe(true)
    expect(AcpiPm.handles(0x3f8)).toBe(false)
  })
})

describe('ACPI PM1 registers in a snapshot', () => {
  it('keep the enable bits and sleep type; SCI_EN stays set and SLP_EN is never carried over', () => {
    const { d } = pm()
    d.write(P.PM1A_EVT + 2, 2, 0x0120)
    d.write(P.PM1A_CNT, 1, 0x01)
    const { d: e, events } = pm()
    e.loadState({ ...d.saveState() })
    expect(e.read(P.PM1A_EVT, 4)).toBe(d.read(P.PM1A_EVT, 4))
    expect(e.read(P.PM1A_CNT, 2)).toBe(d.read(P.PM1A_CNT, 2))
    e.loadState({ status: 0, enable: 0, control: PM1_CNT.SLP_EN })
    expect(e.read(P.PM1A_CNT, 2)).toBe(PM1_CNT.SCI_EN)
    expect(events).toEqual([])
  })
})
