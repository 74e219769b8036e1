import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { AcpiPm } from '../../../src/vm/kvm/legacy/acpi-pm.js'
import { Serial8250 } from '../../../src/vm/kvm/legacy/serial.js'
import { type KvmSnapshot, readKvmSnapshot, writeKvmSnapshot } from '../../../src/vm/kvm/snapshot/format.js'
import { VM_STATE_SIZES } from '../../../src/vm/kvm/snapshot/vm-state.js'
import { VCPU_STATE_SIZES, type VcpuState, XSAVE_LEGACY_SIZE } from '../../../src/vm/kvm/vcpu/state.js'
import { VirtioConsole } from '../../../src/vm/kvm/virtio/console/device.js'
import { VirtioMmioTransport } from '../../../src/vm/kvm/virtio/mmio.js'
import { GuestMemory } from '../../../src/vm/memory/guest-memory.js'

const filled = (size: number, seed: number) => Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed) & 0xff)

function msrs(entries: number): Uint8Array {
  const b = Buffer.alloc(8 + 16 * entries)
  b.writeUInt32LE(entries, 0)
  for (let i = 0; i < entries; i++) {
    b.writeUInt32LE(0x10 + i, 8 + 16 * i)
    b.writeBigUInt64LE(BigInt(1000 + i), 16 + 16 * i)
  }
  return new Uint8Array(b)
}

/** A kvm_cpuid2 of `entries` entries (8-byte header, 40 bytes each). */
function cpuid(entries: number): Uint8Array {
  const b = Buffer.from(filled(8 + 40 * entries, entries))
  b.writeUInt32LE(entries, 0)
  return new Uint8Array(b)
}

function vcpu(seed: number): VcpuState {
  const parts = Object.fromEntries(Object.entries(VCPU_STATE_SIZES).map(([k, n]) => [k, filled(n, seed)]))
  return { ...parts, cpuid: cpuid(4), xsave: filled(XSAVE_LEGACY_SIZE, seed), msrs: msrs(3) } as VcpuState
}

/** kvm_irqchip `chip` (its chip_id first). */
function irqchip(chip: number): Uint8Array {
  const b = Buffer.from(filled(VM_STATE_SIZES.irqchip, chip))
  b.writeUInt32LE(chip, 0)
  return new Uint8Array(b)
}

function snapshot(): KvmSnapshot {
  const console = new VirtioMmioTransport(new VirtioConsole({ ram: GuestMemory.allocate([{ base: 0, size: 1 << 16 }]), onData: () => {} }))
  return {
    memBytes: 256 << 20,
    vcpus: [vcpu(1), vcpu(2)],
    vm: { irqchips: [0, 1, 2].map(irqchip), pit: filled(VM_STATE_SIZES.pit, 9), clock: filled(VM_STATE_SIZES.clock, 4) },
    legacy: { serial: new Serial8250().saveState(), pm: new AcpiPm().saveState() },
    console: console.saveState(),
  }
}

describe("a kvm snapshot's state file", () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-snapshot-format-'))
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

  it('reads back what was written, byte for byte', () => {
    const file = path.join(work, 'ok.kvm')
    const s = snapshot()
    writeKvmSnapshot(file, s)
    expect(readKvmSnapshot(file)).toEqual(s)
  })

  it('refuses a file cut short, another format, and parts of the wrong size, saying which', () => {
    const file = path.join(work, 'bad.kvm')
    writeKvmSnapshot(file, snapshot())
    const text = fs.readFileSync(file, 'utf8')
    const json = JSON.parse(text)
    const refuse = (content: string, why: RegExp) => {
      fs.writeFileSync(file, content)
      expect(() => readKvmSnapshot(file)).toThrow(why)
    }
    refuse(text.slice(0, text.length / 2), /is not readable JSON/)
    refuse(JSON.stringify({ ...json, format: 99 }), /is not a kvm snapshot of format 1: .*format/)
    refuse(JSON.stringify({ ...json, vcpus: [] }), /is not a kvm snapshot of format 1: .*vcpus/)
    const cutRegs = structuredClone(json)
    cutRegs.vcpus[1].regs = Buffer.alloc(100).toString('base64')
    refuse(JSON.stringify(cutRegs), /has a vCPU 1 regs of 100 bytes, not 144/)
    const lyingMsrs = structuredClone(json)
    lyingMsrs.vcpus[0].msrs = Buffer.from(msrs(3))
      .subarray(0, 8 + 16 * 2)
      .toString('base64')
    refuse(JSON.stringify(lyingMsrs), /vCPU 0 MSR list of 40 bytes that does not match its count/)
    refuse(JSON.stringify({ ...json, vm: { ...json.vm, irqchips: json.vm.irqchips.slice(0, 2) } }), /irqchips/)
    refuse(JSON.stringify({ ...json, vm: { ...json.vm, irqchips: [json.vm.irqchips[1], json.vm.irqchips[0], json.vm.irqchips[2]] } }), /has irqchip 1 where chip 0 belongs/)
    const badCpuid = structuredClone(json)
    badCpuid.vcpus[0].cpuid = Buffer.from(cpuid(4))
      .subarray(0, 8 + 40 * 3)
      .toString('base64')
    refuse(JSON.stringify(badCpuid), /vCPU 0 CPUID of 128 bytes that does not match its count/)
    refuse(JSON.stringify({ ...json, console: { ...json.console, activated: true, device: undefined } }), /an activated console without its rings' state/)
    refuse(JSON.stringify({ ...json, vm: { ...json.vm, pit: 'AAAA' } }), /has a PIT of 3 bytes, not 112/)
    refuse(JSON.stringify({ ...json, legacy: { ...json.legacy, serial: { ...json.legacy.serial, lcr: 300 } } }), /lcr/)
  })
})
