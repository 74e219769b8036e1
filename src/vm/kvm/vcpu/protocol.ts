/**
 * How a vCPU thread hands an exit it cannot finish alone (port I/O, MMIO) to the main thread,
 * where the devices live: one small SharedArrayBuffer per vCPU, a request/response handshake
 * with Atomics (the vCPU thread blocks in Atomics.wait; the main thread answers from Atomics.waitAsync).
 */

import type { VcpuState } from './state.js'

/** Int32 slots of the control block. */
export const Slot = {
  State: 0,
  Kind: 1,
  IsWrite: 2,
  Size: 3,
  AddrLo: 4,
  AddrHi: 5,
  DataLo: 6,
  DataHi: 7,
  /** Set by the main thread: leave the run loop at the next chance. */
  Stop: 8,
  /** Terminal reason (TerminalReason) once the vCPU thread has left its loop. */
  Terminal: 9,
  /** Extra detail for the terminal reason (exit reason number, errno…). */
  Detail: 10,
  /** Number of exits handled, for statistics. */
  Exits: 11,
  /** Set by the main thread: report registers (and, in debug, exit statistics) at the next chance. */
  Report: 12,
  /** Set by the main thread once every vCPU exists: only then do the vCPU threads enter KVM_RUN. */
  Go: 13,
  /** Set by the main thread: leave KVM_RUN with no I/O pending, post 'paused' and wait (a snapshot). */
  Pause: 14,
  /** Set by the main thread once every vCPU is paused: post the vCPU's state ('state'), then wait for Stop. */
  Save: 15,
} as const
export const CONTROL_INTS = 16

export const State = { Idle: 0, Request: 1, Response: 2 } as const
export const Kind = { Io: 1, Mmio: 2 } as const

/** Why a vCPU stopped running. */
export const TerminalReason = {
  Stopped: 1,
  /** Guest asked to power off (ACPI S5 / port write handled as power-off). */
  PowerOff: 2,
  /** Guest reset/reboot (i8042 reset, KVM_SYSTEM_EVENT_RESET). */
  Reset: 3,
  /** Triple fault (KVM_EXIT_SHUTDOWN). */
  Shutdown: 4,
  /** KVM could not enter or run the guest (FAIL_ENTRY, INTERNAL_ERROR, an unexpected exit). */
  Failed: 5,
} as const
export type TerminalReason = (typeof TerminalReason)[keyof typeof TerminalReason]

/** What the main thread answers to a request: a value for reads, or an instruction to stop. */
export const Answer = { Continue: 0, PowerOff: 1, Reset: 2 } as const

/** Register values to load into a vCPU before its first run: dotted kvm_regs/kvm_sregs paths. */
export interface CpuState {
  regs: Record<string, number | bigint>
  sregs: Record<string, number | bigint>
}

/** Exit statistics a vCPU thread reports (debug): counts by kind (`io:3f8`, `mmio:d0000000`, `hlt`…) and handshake time. */
export interface VcpuStats {
  counts: Record<string, number>
  /** Exits handed to the main thread, and the wall time the vCPU thread spent waiting for the answers. */
  asks: number
  askMs: number
  /** Wall time spent inside KVM_RUN, and outside it (exit handling, JS). */
  runMs: number
  elapsedMs: number
}

/** What a vCPU thread posts when asked (Slot.Report), and at its exit in debug. */
export interface VcpuReport {
  /** Exit statistics; counts stay empty without the debug stats. */
  stats: VcpuStats
  /** Guest RIP, RFLAGS and CR3 when the report was taken (the vCPU was kicked out of KVM_RUN for it). */
  rip?: string
  rflags?: string
  cr3?: string
  cr4?: string
  rsp?: string
  /** rax…r15 (hex, no 0x). */
  gprs?: Record<string, string>
  mpState?: number
  /** Local APIC timer, ISR/IRR vectors, TSC and TSC deadline. */
  lapic?: string
}

export interface VcpuThreadData {
  vmFd: number
  id: number
  runMmapSize: number
  /** Encoded kvm_cpuid2 for this vCPU. */
  cpuid: Uint8Array
  /** XCR0 to load before the first run (run-loop.ts setXcr0); absent without XSAVE. */
  xcr0?: bigint
  /** MSR values to set on every vCPU before it runs. */
  msrs: { index: number; data: number }[]
  /** Boot CPU only: its entry state. Application processors wait for INIT/SIPI in the kernel. */
  boot?: CpuState
  /** A restore: the saved state replaces every boot-time setting (xcr0, msrs, boot); xsaveSize is this KVM's. */
  restore?: { state: VcpuState; xsaveSize: number }
  /** A template guest: the MSRs to save (KVM_GET_MSR_INDEX_LIST) and KVM_CAP_XSAVE2's size. */
  save?: { msrIndices: number[]; xsaveSize: number }
  control: SharedArrayBuffer
  kickSignal: number
  /** Count exits by kind and time the handshake (KTSTR_LOG=debug). */
  stats: boolean
}
