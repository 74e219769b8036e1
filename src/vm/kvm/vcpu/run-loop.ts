/**
 * One vCPU's thread: it owns the vCPU fd and runs the synchronous KVM_RUN loop, reading
 * the mmap'd kvm_run page through a DataView. Exits that need a device go to the main thread
 * (protocol.ts); everything else is handled here.
 */

import { parentPort, workerData } from 'node:worker_threads'
import koffi, { type TypeObject } from 'koffi'
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../native-shims/constants.js'
import {
  KVM_EXIT,
  KVM_IOCTL,
  KVM_SYSTEM_EVENT,
  kvm_fpu,
  kvm_lapic_state,
  kvm_regs,
  kvm_sregs,
  kvm_xcrs,
  memberAt,
  offsetOf,
  RUN_OFFSETS,
} from '../../../../native-shims/kvm/abi.js'
import { close, getpid, gettid, ioctlPtr, ioctlVal, mmap, munmap, siginterrupt, signal, tryIoctlVal, view } from '../../../../native-shims/libc.js'
import { Answer, type CpuState, Kind, Slot, State, TerminalReason, type VcpuReport, type VcpuThreadData } from './protocol.js'
import { loadVcpuState, saveVcpuState } from './state.js'

const data = workerData as VcpuThreadData
const ctl = new Int32Array(data.control)
const EINTR = 4
const EAGAIN = 11

/** Debug statistics (data.stats): exits by kind, time in KVM_RUN and in the main-thread handshake. */
const counts = new Map<string, number>()
let asks = 0
let askMs = 0
let runMs = 0
const startedAt = performance.now()
const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1)

/** The local APIC timer and pending vectors, and the TSC against the TSC deadline, for a stuck guest. */
function lapicSummary(vcpu: number): string {
  const lapic = Buffer.alloc(koffi.sizeof(kvm_lapic_state))
  ioctlPtr(vcpu, KVM_IOCTL.GET_LAPIC, lapic)
  const reg = (off: number) => lapic.readUInt32LE(off)
  const vectors = (base: number) => {
    const v: string[] = []
    for (let i = 0; i < 8; i++) {
      const w = reg(base + 0x10 * i)
      for (let b = 0; b < 32; b++) if (w & (1 << b)) v.push((i * 32 + b).toString(16))
    }
    return v.join(',')
  }
  const msrs = Buffer.alloc(8 + 16 * 2)
  msrs.writeUInt32LE(2, 0)
  msrs.writeUInt32LE(0x10, 8) // IA32_TSC
  msrs.writeUInt32LE(0x6e0, 24) // IA32_TSC_DEADLINE
  ioctlPtr(vcpu, KVM_IOCTL.GET_MSRS, msrs)
  const tsc = msrs.readBigUInt64LE(16)
  const deadline = msrs.readBigUInt64LE(32)
  return (
    `lvtt ${reg(0x320).toString(16)} tmict ${reg(0x380).toString(16)} tmcct ${reg(0x390).toString(16)} ` +
    `isr [${vectors(0x100)}] irr [${vectors(0x200)}] tsc ${tsc} deadline ${deadline}` +
    (deadline ? ` (in ${(deadline - tsc).toString()} cycles)` : '')
  )
}

const GPRS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const

function report(vcpu: number): VcpuReport {
  const out: VcpuReport = {
    stats: { counts: Object.fromEntries(counts), asks, askMs, runMs, elapsedMs: performance.now() - startedAt },
  }
  try {
    const regs = Buffer.alloc(koffi.sizeof(kvm_regs))
    ioctlPtr(vcpu, KVM_IOCTL.GET_REGS, regs)
    out.rip = regs.readBigUInt64LE(memberAt(kvm_regs, 'rip').offset).toString(16)
    out.rflags = regs.readBigUInt64LE(memberAt(kvm_regs, 'rflags').offset).toString(16)
    const sregs = Buffer.alloc(koffi.sizeof(kvm_sregs))
    ioctlPtr(vcpu, KVM_IOCTL.GET_SREGS, sregs)
    out.cr3 = sregs.readBigUInt64LE(memberAt(kvm_sregs, 'cr3').offset).toString(16)
    out.cr4 = sregs.readBigUInt64LE(memberAt(kvm_sregs, 'cr4').offset).toString(16)
    out.rsp = regs.readBigUInt64LE(memberAt(kvm_regs, 'rsp').offset).toString(16)
    out.gprs = Object.fromEntries(GPRS.map((r) => [r, regs.readBigUInt64LE(memberAt(kvm_regs, r).offset).toString(16)]))
    const mp = Buffer.alloc(4)
    ioctlPtr(vcpu, KVM_IOCTL.GET_MP_STATE, mp)
    out.mpState = mp.readUInt32LE(0)
    out.lapic = lapicSummary(vcpu)
  } catch {
    /* registers are best effort */
  }
  return out
}

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

/**
 * XCR0 before the guest's first XSETBV. Only matters where the host does not trap XSETBV for
 * KVM: QEMU's TCG SVM (7.2) lets a nested guest's XSETBV through, so KVM keeps its own XCR0
 * (x87 only) and loads it on every VM entry — the guest then loses its SSE/AVX state on context
 * switches and sees CPUID 0xD.0 EBX disagree ("XSAVE consistency problem"). Preloading the value
 * the guest will choose (cpuid.ts advertisedXcr0) keeps both right; elsewhere the guest's own
 * XSETBV sets the same value.
 */
function setXcr0(vcpu: number, value: bigint): void {
  const buf = Buffer.alloc(koffi.sizeof(kvm_xcrs))
  buf.writeUInt32LE(1, offsetOf(kvm_xcrs, 'nr_xcrs'))
  const xcr = offsetOf(kvm_xcrs, 'xcrs')
  buf.writeUInt32LE(0, xcr) // XCR0
  buf.writeBigUInt64LE(value, xcr + 8)
  ioctlPtr(vcpu, KVM_IOCTL.SET_XCRS, buf)
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
  const t0 = data.stats ? performance.now() : 0
  Atomics.store(ctl, Slot.State, State.Request)
  Atomics.notify(ctl, Slot.State)
  while (Atomics.load(ctl, Slot.State) !== State.Response) Atomics.wait(ctl, Slot.State, State.Request, 1000)
  const result = (BigInt(ctl[Slot.DataHi]! >>> 0) << 32n) | BigInt(ctl[Slot.DataLo]! >>> 0)
  const answer = ctl[Slot.Kind]!
  Atomics.store(ctl, Slot.State, State.Idle)
  Atomics.notify(ctl, Slot.State)
  if (data.stats) {
    asks++
    askMs += performance.now() - t0
  }
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

/**
 * A snapshot of this vCPU (Slot.Pause): finish the exit last handled — KVM completes an I/O or MMIO
 * read only on the next KVM_RUN, and immediate_exit lets it do that without running the guest
 * further (KVM API, kvm_run.immediate_exit) — then wait until every vCPU is out of KVM_RUN (Slot.Save)
 * before reading the state, so no other vCPU's IPI lands after it was read. Ends at Stop.
 */
function pauseForSnapshot(vcpu: number, run: DataView): { reason: TerminalReason; detail: number } {
  run.setUint8(RUN_OFFSETS.immediate_exit, 1)
  const r = tryIoctlVal(vcpu, KVM_IOCTL.RUN, 0)
  run.setUint8(RUN_OFFSETS.immediate_exit, 0)
  if (r >= 0 || (-r !== EINTR && -r !== EAGAIN)) return { reason: TerminalReason.Failed, detail: r >= 0 ? run.getUint32(RUN_OFFSETS.exit_reason, true) : -r }
  parentPort!.postMessage({ kind: 'paused' })
  while (!Atomics.load(ctl, Slot.Save) && !Atomics.load(ctl, Slot.Stop)) Atomics.wait(ctl, Slot.Save, 0, 1000)
  if (!Atomics.load(ctl, Slot.Stop)) {
    try {
      const state = saveVcpuState(vcpu, data.cpuid, data.save?.msrIndices ?? [], data.save?.xsaveSize ?? 0)
      parentPort!.postMessage({ kind: 'state', state })
    } catch (e) {
      parentPort!.postMessage({ kind: 'state-failed', message: (e as Error).message })
    }
  }
  while (!Atomics.load(ctl, Slot.Stop)) Atomics.wait(ctl, Slot.Save, 1, 1000)
  return { reason: TerminalReason.Stopped, detail: 0 }
}

function runLoop(vcpu: number, run: DataView): { reason: TerminalReason; detail: number } {
  for (;;) {
    if (Atomics.load(ctl, Slot.Stop)) return { reason: TerminalReason.Stopped, detail: 0 }
    if (Atomics.load(ctl, Slot.Pause)) return pauseForSnapshot(vcpu, run)
    if (Atomics.exchange(ctl, Slot.Report, 0)) parentPort!.postMessage({ kind: 'report', report: report(vcpu) })
    const t0 = data.stats ? performance.now() : 0
    const r = tryIoctlVal(vcpu, KVM_IOCTL.RUN, 0)
    if (data.stats) runMs += performance.now() - t0
    if (r < 0) {
      if (-r === EINTR || -r === EAGAIN) {
        run.setUint8(RUN_OFFSETS.immediate_exit, 0)
        continue
      }
      return { reason: TerminalReason.Failed, detail: -r }
    }
    Atomics.add(ctl, Slot.Exits, 1)
    const exit = run.getUint32(RUN_OFFSETS.exit_reason, true)
    if (data.stats) {
      if (exit === KVM_EXIT.IO) count(`io:${run.getUint16(RUN_OFFSETS.io_port, true).toString(16)}`)
      else if (exit === KVM_EXIT.MMIO) count(`mmio:${run.getBigUint64(RUN_OFFSETS.mmio_phys_addr, true).toString(16)}`)
      else count(`exit:${exit}`)
    }
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
  let runAddr: bigint | undefined
  let run: DataView
  let refusedMsrs: number[] = []
  try {
    runAddr = mmap(data.runMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
    run = new DataView(view(runAddr, data.runMmapSize))
    ioctlPtr(vcpu, KVM_IOCTL.SET_CPUID2, Buffer.from(data.cpuid.buffer, data.cpuid.byteOffset, data.cpuid.byteLength))
    if (data.restore) refusedMsrs = loadVcpuState(vcpu, data.restore.state, data.cpuid, data.restore.xsaveSize)
    else {
      if (data.xcr0 !== undefined) setXcr0(vcpu, data.xcr0)
      initFpu(vcpu)
      setMsrs(vcpu, data.msrs)
      initLapicLints(vcpu)
      if (data.boot) loadBootState(vcpu, data.boot)
    }
  } catch (e) {
    // Set-up failed: the main thread never learns of the fd or the run page, so they go here.
    if (runAddr !== undefined) munmap(runAddr, data.runMmapSize)
    close(vcpu)
    throw e
  }
  parentPort!.postMessage({ kind: 'ready', tid: gettid(), pid: getpid(), runAddr, refusedMsrs })
  // A guest that sends its INIT/SIPI before the target vCPU exists would lose that CPU.
  while (!Atomics.load(ctl, Slot.Go) && !Atomics.load(ctl, Slot.Stop)) Atomics.wait(ctl, Slot.Go, 0, 1000)
  let result: { reason: TerminalReason; detail: number }
  try {
    result = runLoop(vcpu, run)
  } catch (e) {
    parentPort!.postMessage({ kind: 'error', message: (e as Error).message })
    result = { reason: TerminalReason.Failed, detail: -1 }
  }
  if (data.stats) parentPort!.postMessage({ kind: 'report', report: report(vcpu) })
  ctl[Slot.Detail] = result.detail
  Atomics.store(ctl, Slot.Terminal, result.reason)
  // The run page stays mapped: the main thread may still be writing immediate_exit into it. It
  // unmaps it once this thread is gone (thread.ts).
  close(vcpu)
  parentPort!.postMessage({ kind: 'exited', reason: result.reason, detail: result.detail })
}

main()
