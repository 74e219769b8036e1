/**
 * A vCPU's architectural state as KVM holds it, saved and loaded on the vCPU's own thread for a
 * snapshot (KVM API, Documentation/virt/kvm/api.rst). Each part is the ioctl's struct, kept as
 * bytes: the same KVM on the same host reads back what it wrote.
 *
 * Order matters both ways. Saving reads MP state first (KVM_GET_MP_STATE makes KVM take pending
 * INIT/SIPI events into the state it reports) and the vCPU events last. Loading follows KVM's
 * dependencies: special registers (EFER, APIC base) before the XSAVE area and the LAPIC, the LAPIC
 * before the MSRs (TSC_DEADLINE is only accepted in TSC-deadline timer mode), events last.
 */
import koffi from 'koffi'
import { KVM_IOCTL, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave } from '../../../../native-shims/kvm/abi.js'
import { ioctlPtr } from '../../../../native-shims/libc.js'

export interface VcpuState {
  /** The kvm_cpuid2 the vCPU was given: a restore checks it is given the same. */
  cpuid: Uint8Array
  mpState: Uint8Array
  regs: Uint8Array
  sregs: Uint8Array
  /** kvm_xsave: 4 KiB, or KVM_CAP_XSAVE2's size when that is more. */
  xsave: Uint8Array
  xcrs: Uint8Array
  debugregs: Uint8Array
  lapic: Uint8Array
  /** A kvm_msrs buffer: its header, then the entries of every MSR KVM would read. */
  msrs: Uint8Array
  events: Uint8Array
}

/** The fixed size of each part but cpuid, xsave and msrs, for checking a snapshot before it is loaded. */
export const VCPU_STATE_SIZES = {
  mpState: koffi.sizeof(kvm_mp_state),
  regs: koffi.sizeof(kvm_regs),
  sregs: koffi.sizeof(kvm_sregs),
  xcrs: koffi.sizeof(kvm_xcrs),
  debugregs: koffi.sizeof(kvm_debugregs),
  lapic: koffi.sizeof(kvm_lapic_state),
  events: koffi.sizeof(kvm_vcpu_events),
} as const
export const XSAVE_LEGACY_SIZE = koffi.sizeof(kvm_xsave)

const MSRS_HEADER = 8
const MSR_ENTRY = 16
const MSR_IA32_TSC = 0x10
const MSR_IA32_TSC_DEADLINE = 0x6e0

function get(vcpu: number, request: number, size: number): Uint8Array {
  const buf = Buffer.alloc(size)
  ioctlPtr(vcpu, request, buf)
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

function set(vcpu: number, request: number, part: Uint8Array): void {
  ioctlPtr(vcpu, request, Buffer.from(part.buffer, part.byteOffset, part.byteLength))
}

/**
 * The state of a vCPU that is out of KVM_RUN with no I/O pending (run-loop.ts pauses it so).
 * `cpuid` is what the vCPU was given; `msrIndices` KVM_GET_MSR_INDEX_LIST; `xsaveSize` the XSAVE
 * area's size (KVM_CAP_XSAVE2's answer, at least 4 KiB).
 */
export function saveVcpuState(vcpu: number, cpuid: Uint8Array, msrIndices: readonly number[], xsaveSize: number): VcpuState {
  const mpState = get(vcpu, KVM_IOCTL.GET_MP_STATE, VCPU_STATE_SIZES.mpState)
  const regs = get(vcpu, KVM_IOCTL.GET_REGS, VCPU_STATE_SIZES.regs)
  const sregs = get(vcpu, KVM_IOCTL.GET_SREGS, VCPU_STATE_SIZES.sregs)
  const xsave = xsaveSize > XSAVE_LEGACY_SIZE ? get(vcpu, KVM_IOCTL.GET_XSAVE2, xsaveSize) : get(vcpu, KVM_IOCTL.GET_XSAVE, XSAVE_LEGACY_SIZE)
  const xcrs = get(vcpu, KVM_IOCTL.GET_XCRS, VCPU_STATE_SIZES.xcrs)
  const debugregs = get(vcpu, KVM_IOCTL.GET_DEBUGREGS, VCPU_STATE_SIZES.debugregs)
  const lapic = get(vcpu, KVM_IOCTL.GET_LAPIC, VCPU_STATE_SIZES.lapic)
  // TSC before TSC_DEADLINE (the deadline is a TSC value), whatever KVM's list order.
  const msrs = readMsrs(vcpu, [...msrIndices.filter((i) => i !== MSR_IA32_TSC_DEADLINE), ...msrIndices.filter((i) => i === MSR_IA32_TSC_DEADLINE)])
  fixZeroTscDeadline(msrs)
  const events = get(vcpu, KVM_IOCTL.GET_VCPU_EVENTS, VCPU_STATE_SIZES.events)
  return { cpuid: cpuid.slice(), mpState, regs, sregs, xsave, xcrs, debugregs, lapic, msrs, events }
}

/**
 * Loads `s` into a new vCPU whose CPUID (`cpuid`) is set and whose XSAVE area is `xsaveSize` bytes.
 * Throws when the snapshot does not fit this vCPU — another CPUID (the host's kernel or CPU changed),
 * another XSAVE size — or KVM refuses an MSR it had (a non-zero value): the caller then boots cold.
 * Returns the MSRs KVM refused with the value 0, left at their reset values.
 */
export function loadVcpuState(vcpu: number, s: VcpuState, cpuid: Uint8Array, xsaveSize: number): number[] {
  if (!Buffer.from(s.cpuid).equals(Buffer.from(cpuid))) throw new Error("the snapshot's vCPU had another CPUID (the host's kernel, KVM or CPU changed)")
  if (s.xsave.byteLength !== xsaveSize) throw new Error(`the snapshot's XSAVE area is ${s.xsave.byteLength} bytes, this KVM's ${xsaveSize}`)
  set(vcpu, KVM_IOCTL.SET_MP_STATE, s.mpState)
  set(vcpu, KVM_IOCTL.SET_REGS, s.regs)
  set(vcpu, KVM_IOCTL.SET_SREGS, s.sregs)
  set(vcpu, KVM_IOCTL.SET_XSAVE, s.xsave)
  set(vcpu, KVM_IOCTL.SET_XCRS, s.xcrs)
  set(vcpu, KVM_IOCTL.SET_DEBUGREGS, s.debugregs)
  set(vcpu, KVM_IOCTL.SET_LAPIC, s.lapic)
  const refused = writeMsrs(vcpu, s.msrs)
  set(vcpu, KVM_IOCTL.SET_VCPU_EVENTS, s.events)
  return refused
}

/** The number of MSR entries in a kvm_msrs buffer, checked against its length. */
export function msrCount(msrs: Uint8Array): number {
  if (msrs.byteLength < MSRS_HEADER) throw new Error(`an MSR list of ${msrs.byteLength} bytes has no header`)
  const n = new DataView(msrs.buffer, msrs.byteOffset, msrs.byteLength).getUint32(0, true)
  if (msrs.byteLength !== MSRS_HEADER + n * MSR_ENTRY) throw new Error(`an MSR list of ${msrs.byteLength} bytes cannot hold ${n} entries`)
  return n
}

/**
 * KVM_GET_MSRS of every listed MSR it will read: it stops at the first it cannot (an MSR of a
 * feature this CPU lacks) and returns how many it read, so that one is dropped and the rest asked
 * again.
 */
function readMsrs(vcpu: number, indices: readonly number[]): Uint8Array {
  let list = [...indices]
  for (;;) {
    const buf = Buffer.alloc(MSRS_HEADER + list.length * MSR_ENTRY)
    buf.writeUInt32LE(list.length, 0)
    list.forEach((index, i) => buf.writeUInt32LE(index >>> 0, MSRS_HEADER + i * MSR_ENTRY))
    const read = ioctlPtr(vcpu, KVM_IOCTL.GET_MSRS, buf)
    if (read >= list.length) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
    list = [...list.slice(0, read), ...list.slice(read + 1)]
  }
}

/**
 * A TSC deadline read as 0 may be a deadline that passed with its interrupt not yet in the LAPIC:
 * restored as 0 the timer would never fire again. The saved TSC instead fires it at once (a
 * spurious tick at worst), as Firecracker restores it.
 */
function fixZeroTscDeadline(msrs: Uint8Array): void {
  const b = Buffer.from(msrs.buffer, msrs.byteOffset, msrs.byteLength)
  const at = (index: number) => {
    for (let i = 0; i < b.readUInt32LE(0); i++) if (b.readUInt32LE(MSRS_HEADER + i * MSR_ENTRY) === index) return MSRS_HEADER + i * MSR_ENTRY + 8
    return -1
  }
  const [tsc, deadline] = [at(MSR_IA32_TSC), at(MSR_IA32_TSC_DEADLINE)]
  if (tsc >= 0 && deadline >= 0 && b.readBigUInt64LE(deadline) === 0n) b.writeBigUInt64LE(b.readBigUInt64LE(tsc), deadline)
}

/** KVM_SET_MSRS of a saved list; one KVM refuses is skipped the same way, and only if its value is 0. */
function writeMsrs(vcpu: number, msrs: Uint8Array): number[] {
  const refused: number[] = []
  let buf = Buffer.from(msrs)
  for (;;) {
    const n = buf.readUInt32LE(0)
    const done = ioctlPtr(vcpu, KVM_IOCTL.SET_MSRS, buf)
    if (done >= n) return refused
    const at = MSRS_HEADER + done * MSR_ENTRY
    const value = buf.readBigUInt64LE(at + 8)
    if (value !== 0n) throw new Error(`KVM refused the snapshot's MSR 0x${buf.readUInt32LE(at).toString(16)} = 0x${value.toString(16)}`)
    refused.push(buf.readUInt32LE(at))
    // The entries after the refused one, behind a new header.
    const rest = buf.subarray(at + MSR_ENTRY)
    buf = Buffer.alloc(MSRS_HEADER + rest.length)
    buf.writeUInt32LE(n - done - 1, 0)
    rest.copy(buf, MSRS_HEADER)
  }
}
