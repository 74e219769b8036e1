/**
 * One vCPU: a worker thread that owns the vCPU fd and runs the synchronous KVM_RUN loop, reading
 * the mmap'd kvm_run page through a DataView. Exits that need a device go to the main thread
 * (protocol.ts); everything else is handled here.
 */
import koffi, { type TypeObject } from 'koffi'
import { parentPort, workerData } from 'node:worker_threads'
import {
  KVM_EXIT,
  KVM_IOCTL,
  KVM_SYSTEM_EVENT,
  RUN_OFFSETS,
  kvm_fpu,
  kvm_lapic_state,
  kvm_regs,
  kvm_sregs,
  memberAt,
} from '../../../../native-shims/kvm/abi.js'
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../native-shims/constants.js'
import {
  close,
  getpid,
  gettid,
  ioctlPtr,
  ioctlVal,
  mmap,
  siginterrupt,
  signal,
  tryIoctlVal,
  view,
} from '../../../../native-shims/libc.js'
import { Answer, Kind, Slot, State, TerminalReason, type CpuState, type VcpuWorkerData } from './protocol.js'

const data = workerData as VcpuWorkerData
const ctl = new Int32Array(data.control)
const EINTR = 4
const EAGAIN = 11

function patch(buf: Buffer, type: TypeObject, values: Record<string, number | bigint>): void {
  for (const [path, v] of Object.entries(values)) {
    const { offset, type: t } = memberAt(type, path)
    const size = koffi.sizeof(t)
    // 32-bit flag arithmetic in JS yields negative numbers for bit 31 (CR0.PG): read them as unsigned.
    if (size === 8) buf.writeBigUInt64LE(typeof v === 'number' && v < 0 ? BigInt(v >>> 0) : BigInt(v), offset)
    else if (size === 4) buf.writeUInt32LE(Number(v) >>> 0, offset)
    else if (size === 2) buf.writeUInt16LE(Number(v), offset)
    else if (size === 1) buf.writeUInt8(Number(v), offset)
    else throw new Error(`cannot set ${path} (${size} bytes)`)
  }
}

function loadBootState(vcpu: number, state: CpuState): void {
  const sregs = Buffer.alloc(koffi.sizeof(kvm_sregs))
  ioctlPtr(vcpu, KVM_IOCTL.GET_SREGS, sregs)
  patch(sregs, kvm_sregs, state.sregs)
  ioctlPtr(vcpu, KVM_IOCTL.SET_SREGS, sregs)
  const regs = Buffer.alloc(koffi.sizeof(kvm_regs))
  patch(regs, kvm_regs, { rflags: 2, ...state.regs })
  ioctlPtr(vcpu, KVM_IOCTL.SET_REGS, regs)
}

/** KVM_SET_MSRS: kvm_msrs header (nmsrs, pad) then 16-byte kvm_msr_entry { index, reserved, data }. */
function setMsrs(vcpu: number, msrs: { index: number; data: number }[]): void {
  const buf = Buffer.alloc(8 + 16 * msrs.length)
  buf.writeUInt32LE(msrs.length, 0)
  msrs.forEach((m, i) => {
    buf.writeUInt32LE(m.index >>> 0, 8 + 16 * i)
    buf.writeBigUInt64LE(BigInt(m.data), 8 + 16 * i + 8)
  })
  const set = ioctlPtr(vcpu, KVM_IOCTL.SET_MSRS, buf)
  if (set !== msrs.length) throw new Error(`KVM_SET_MSRS set ${set} of ${msrs.length} MSRs (index 0x${msrs[set]?.index.toString(16)} refused)`)
}

/** x87 control word and MXCSR at their reset values (Intel SDM vol. 1 §8.1.5, §10.2.3). */
function initFpu(vcpu: number): void {
  const fpu = Buffer.alloc(koffi.sizeof(kvm_fpu))
  patch(fpu, kvm_fpu, { fcw: 0x37f, mxcsr: 0x1f80 })
  ioctlPtr(vcpu, KVM_IOCTL.SET_FPU, fpu)
}

/** LINT0 = ExtINT (the legacy PIC's output), LINT1 = NMI, as a PC's BIOS leaves them (MP spec §3.6.2). */
function initLapicLints(vcpu: number): void {
  const lapic = Buffer.alloc(koffi.sizeof(kvm_lapic_state))
  ioctlPtr(vcpu, KVM_IOCTL.GET_LAPIC, lapic)
  const LVT0 = 0x350
  const LVT1 = 0x360
  const DM_EXTINT = 0x7 << 8
  const DM_NMI = 0x4 << 8
  lapic.writeUInt32LE((lapic.readUInt32LE(LVT0) & ~0x700) | DM_EXTINT, LVT0)
  lapic.writeUInt32LE((lapic.readUInt32LE(LVT1) & ~0x700) | DM_NMI, LVT1)
  ioctlPtr(vcpu, KVM_IOCTL.SET_LAPIC, lapic)
}

/** Hand one access to the main thread and wait for its answer. */
function ask(kind: number, isWrite: boolean, size: number, addr: number, value: bigint): { value: bigint; answer: number } {
  ctl[Slot.Kind] = kind
  ctl[Slot.IsWrite] = isWrite ? 1 : 0
  ctl[Slot.Size] = size
  ctl[Slot.AddrLo] = addr | 0
  ctl[Slot.AddrHi] = Math.floor(addr / 0x1_0000_0000) | 0
  ctl[Slot.DataLo] = Number(value & 0xffff_ffffn) | 0
  ctl[Slot.DataHi] = Number(value >> 32n) | 0
  Atomics.store(ctl, Slot.State, State.Request)
  Atomics.notify(ctl, Slot.State)
  while (Atomics.load(ctl, Slot.State) !== State.Response) Atomics.wait(ctl, Slot.State, State.Request, 1000)
  const result = (BigInt(ctl[Slot.DataHi]! >>> 0) << 32n) | BigInt(ctl[Slot.DataLo]! >>> 0)
  const answer = ctl[Slot.Kind]!
  Atomics.store(ctl, Slot.State, State.Idle)
  Atomics.notify(ctl, Slot.State)
  return { value: result, answer }
}

function readLe(dv: DataView, off: number, size: number): bigint {
  let v = 0n
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(dv.getUint8(off + i))
  return v
}

function writeLe(dv: DataView, off: number, size: number, v: bigint): void {
  for (let i = 0; i < size; i++) dv.setUint8(off + i, Number((v >> BigInt(8 * i)) & 0xffn))
}

function runLoop(vcpu: number, run: DataView): { reason: TerminalReason; detail: number } {
  for (;;) {
    if (Atomics.load(ctl, Slot.Stop)) return { reason: TerminalReason.Stopped, detail: 0 }
    const r = tryIoctlVal(vcpu, KVM_IOCTL.RUN, 0)
    if (r < 0) {
      if (-r === EINTR || -r === EAGAIN) {
        run.setUint8(RUN_OFFSETS.immediate_exit, 0)
        continue
      }
      return { reason: TerminalReason.Failed, detail: -r }
    }
    Atomics.add(ctl, Slot.Exits, 1)
    const exit = run.getUint32(RUN_OFFSETS.exit_reason, true)
    switch (exit) {
      case KVM_EXIT.IO: {
        const out = run.getUint8(RUN_OFFSETS.io_direction) === 1
        const size = run.getUint8(RUN_OFFSETS.io_size)
        const port = run.getUint16(RUN_OFFSETS.io_port, true)
        const count = run.getUint32(RUN_OFFSETS.io_count, true)
        const base = Number(run.getBigUint64(RUN_OFFSETS.io_data_offset, true))
        // String I/O (rep outsb/insb) puts `count` elements back to back.
        for (let i = 0; i < count; i++) {
          const off = base + i * size
          const { value, answer } = ask(Kind.Io, out, size, port, out ? readLe(run, off, size) : 0n)
          if (answer === Answer.PowerOff) return { reason: TerminalReason.PowerOff, detail: port }
          if (answer === Answer.Reset) return { reason: TerminalReason.Reset, detail: port }
          if (!out) writeLe(run, off, size, value)
        }
        break
      }
      case KVM_EXIT.MMIO: {
        const addr = Number(run.getBigUint64(RUN_OFFSETS.mmio_phys_addr, true))
        const len = run.getUint32(RUN_OFFSETS.mmio_len, true)
        const write = run.getUint8(RUN_OFFSETS.mmio_is_write) === 1
        const { value, answer } = ask(Kind.Mmio, write, len, addr, write ? readLe(run, RUN_OFFSETS.mmio_data, len) : 0n)
        if (answer === Answer.PowerOff) return { reason: TerminalReason.PowerOff, detail: addr }
        if (answer === Answer.Reset) return { reason: TerminalReason.Reset, detail: addr }
        if (!write) writeLe(run, RUN_OFFSETS.mmio_data, len, value)
        break
      }
      case KVM_EXIT.HLT:
        // With the in-kernel LAPIC a HLT only reaches us if the guest halted with interrupts off.
        return { reason: TerminalReason.PowerOff, detail: exit }
      case KVM_EXIT.SHUTDOWN:
        return { reason: TerminalReason.Shutdown, detail: exit }
      case KVM_EXIT.SYSTEM_EVENT: {
        const type = run.getUint32(RUN_OFFSETS.system_event_type, true)
        if (type === KVM_SYSTEM_EVENT.SHUTDOWN) return { reason: TerminalReason.PowerOff, detail: type }
        if (type === KVM_SYSTEM_EVENT.RESET) return { reason: TerminalReason.Reset, detail: type }
        return { reason: TerminalReason.Failed, detail: 1000 + type }
      }
      case KVM_EXIT.INTR:
        break
      case KVM_EXIT.FAIL_ENTRY:
      case KVM_EXIT.INTERNAL_ERROR:
      default:
        return { reason: TerminalReason.Failed, detail: exit }
    }
  }
}

function main(): void {
  // The kick: a signal with a do-nothing handler and no SA_RESTART makes a blocked KVM_RUN return EINTR.
  signal(data.kickSignal, 'noop')
  siginterrupt(data.kickSignal, true)
  const vcpu = ioctlVal(data.vmFd, KVM_IOCTL.CREATE_VCPU, data.id)
  const runAddr = mmap(data.runMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
  const run = new DataView(view(runAddr, data.runMmapSize))
  ioctlPtr(vcpu, KVM_IOCTL.SET_CPUID2, Buffer.from(data.cpuid.buffer, data.cpuid.byteOffset, data.cpuid.byteLength))
  initFpu(vcpu)
  setMsrs(vcpu, data.msrs)
  initLapicLints(vcpu)
  if (data.boot) loadBootState(vcpu, data.boot)
  parentPort!.postMessage({ kind: 'ready', tid: gettid(), pid: getpid(), runAddr })
  let result: { reason: TerminalReason; detail: number }
  try {
    result = runLoop(vcpu, run)
  } catch (e) {
    parentPort!.postMessage({ kind: 'error', message: (e as Error).message })
    result = { reason: TerminalReason.Failed, detail: -1 }
  }
  ctl[Slot.Detail] = result.detail
  Atomics.store(ctl, Slot.Terminal, result.reason)
  // The run page stays mapped: the main thread may still be writing immediate_exit into it. It
  // unmaps it once this thread is gone (thread.ts).
  close(vcpu)
  parentPort!.postMessage({ kind: 'exited', reason: result.reason, detail: result.detail })
}

main()
