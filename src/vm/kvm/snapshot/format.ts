/**
 * A kvm-backend snapshot's state file: the vCPUs' and the VM's KVM state, and our devices' state,
 * as JSON (KVM's structs as base64). Guest RAM is beside it, one file of the layout's ranges back
 * to back (../memory/host-ram.ts). Read back through a schema and size checks: a truncated or
 * edited file is refused with the reason, and the caller boots cold.
 */
import fs from 'node:fs'
import koffi from 'koffi'
import * as v from 'valibot'
import { kvm_cpuid_entry2, kvm_cpuid2 } from '../../../../native-shims/kvm/abi.js'
import type { LegacyState } from '../legacy/attach.js'
import { msrCount, VCPU_STATE_SIZES, type VcpuState, XSAVE_LEGACY_SIZE } from '../vcpu/state.js'
import type { VirtioMmioState } from '../virtio/mmio.js'
import { VM_STATE_SIZES, type VmState } from './vm-state.js'

/** Bumped when the file's meaning changes. */
export const KVM_SNAPSHOT_FORMAT = 1

export interface KvmSnapshot {
  /** Guest RAM bytes (the RAM file's size). */
  memBytes: number
  vcpus: VcpuState[]
  vm: VmState
  legacy: LegacyState
  /** The virtio-console channel's transport, with the console's own state inside. */
  console: VirtioMmioState
}

const CPUID_HEADER = koffi.sizeof(kvm_cpuid2)
const CPUID_ENTRY = koffi.sizeof(kvm_cpuid_entry2)
const u32 = v.pipe(v.number(), v.safeInteger(), v.minValue(0), v.maxValue(0xffff_ffff))
const byte = v.pipe(v.number(), v.safeInteger(), v.minValue(0), v.maxValue(0xff))
const base64 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9+/]*={0,2}$/))
const pair = v.tuple([u32, u32])
const ringPositions = v.object({ nextAvail: v.pipe(u32, v.maxValue(0xffff)), nextUsed: v.pipe(u32, v.maxValue(0xffff)) })

const VcpuSchema = v.object({
  cpuid: base64,
  mpState: base64,
  regs: base64,
  sregs: base64,
  xsave: base64,
  xcrs: base64,
  debugregs: base64,
  lapic: base64,
  msrs: base64,
  events: base64,
})

const SnapshotSchema = v.object({
  format: v.literal(KVM_SNAPSHOT_FORMAT),
  memBytes: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  vcpus: v.pipe(v.array(VcpuSchema), v.minLength(1)),
  vm: v.object({ irqchips: v.pipe(v.array(base64), v.length(3)), pit: base64, clock: base64 }),
  legacy: v.object({
    serial: v.object({
      ier: byte,
      lcr: byte,
      mcr: byte,
      scr: byte,
      dll: byte,
      dlm: byte,
      fifoEnabled: v.boolean(),
      thrInterrupt: v.boolean(),
      lineErrors: byte,
      msrDeltas: byte,
      rx: v.pipe(v.array(byte), v.maxLength(4096)),
      level: v.boolean(),
    }),
    pm: v.object({ status: u32, enable: u32, control: u32 }),
  }),
  console: v.object({
    status: byte,
    deviceFeaturesSel: u32,
    driverFeaturesSel: u32,
    driverFeatures: v.pipe(v.string(), v.regex(/^[0-9a-f]{1,16}$/)),
    queueSel: u32,
    generation: u32,
    queues: v.array(v.object({ num: u32, ready: v.boolean(), desc: pair, driver: pair, device: pair })),
    activated: v.boolean(),
    interruptStatus: u32,
    device: v.optional(
      v.object({
        multiport: v.boolean(),
        guestOpen: v.boolean(),
        queues: v.array(v.nullable(ringPositions)),
        control: v.array(base64),
        toGuest: v.array(base64),
      }),
    ),
  }),
})

const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64')
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

export function writeKvmSnapshot(file: string, s: KvmSnapshot): void {
  const vcpus = s.vcpus.map((c) => Object.fromEntries(Object.entries(c).map(([k, u]) => [k, b64(u as Uint8Array)])))
  const vm = { irqchips: s.vm.irqchips.map(b64), pit: b64(s.vm.pit), clock: b64(s.vm.clock) }
  fs.writeFileSync(file, JSON.stringify({ format: KVM_SNAPSHOT_FORMAT, memBytes: s.memBytes, vcpus, vm, legacy: s.legacy, console: s.console }))
}

/** The snapshot in `file`; throws with what is wrong with it. */
export function readKvmSnapshot(file: string): KvmSnapshot {
  let json: unknown
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (e) {
    throw new Error(`the snapshot ${file} is not readable JSON: ${(e as Error).message}`)
  }
  const r = v.safeParse(SnapshotSchema, json)
  if (!r.success) {
    const issue = r.issues[0]
    throw new Error(`the snapshot ${file} is not a kvm snapshot of format ${KVM_SNAPSHOT_FORMAT}: ${v.getDotPath(issue) ?? 'the file'}: ${issue.message}`)
  }
  const o = r.output
  const vcpus = o.vcpus.map((c, i) => {
    const s = Object.fromEntries(Object.entries(c).map(([k, t]) => [k, bytes(t)])) as unknown as VcpuState
    for (const [part, size] of Object.entries(VCPU_STATE_SIZES)) expectSize(file, `vCPU ${i} ${part}`, s[part as keyof VcpuState], size)
    const entries = (s.cpuid.byteLength - CPUID_HEADER) / CPUID_ENTRY
    if (!Number.isInteger(entries) || entries < 1 || Buffer.from(s.cpuid).readUInt32LE(0) !== entries)
      throw new Error(`the snapshot ${file} has a vCPU ${i} CPUID of ${s.cpuid.byteLength} bytes that does not match its count`)
    if (s.xsave.byteLength < XSAVE_LEGACY_SIZE) throw new Error(`the snapshot ${file} has a vCPU ${i} XSAVE area of ${s.xsave.byteLength} bytes, less than ${XSAVE_LEGACY_SIZE}`)
    try {
      msrCount(s.msrs)
    } catch {
      throw new Error(`the snapshot ${file} has a vCPU ${i} MSR list of ${s.msrs.byteLength} bytes that does not match its count`)
    }
    return s
  })
  const vm: VmState = { irqchips: o.vm.irqchips.map(bytes), pit: bytes(o.vm.pit), clock: bytes(o.vm.clock) }
  vm.irqchips.forEach((c, i) => {
    expectSize(file, `irqchip ${i}`, c, VM_STATE_SIZES.irqchip)
    // PIC master, PIC slave, IOAPIC, in that order (kvm_irqchip.chip_id).
    if (Buffer.from(c).readUInt32LE(0) !== i) throw new Error(`the snapshot ${file} has irqchip ${Buffer.from(c).readUInt32LE(0)} where chip ${i} belongs`)
  })
  expectSize(file, 'PIT', vm.pit, VM_STATE_SIZES.pit)
  expectSize(file, 'clock', vm.clock, VM_STATE_SIZES.clock)
  if (o.console.activated && !o.console.device) throw new Error(`the snapshot ${file} has an activated console without its rings' state`)
  return { memBytes: o.memBytes, vcpus, vm, legacy: o.legacy, console: o.console as VirtioMmioState }
}

function expectSize(file: string, what: string, part: Uint8Array, size: number): void {
  if (part.byteLength !== size) throw new Error(`the snapshot ${file} has a ${what} of ${part.byteLength} bytes, not ${size}`)
}
