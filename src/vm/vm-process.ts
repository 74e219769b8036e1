import type { Duplex } from 'node:stream'
import type { ConsoleLog } from './console.js'
import type { GuestMemory } from './memory/guest-memory.js'

/** A running VM as the boot logic sees it, whatever the backend. */
export interface VmProcess {
  readonly console: ConsoleLog
  /** The channel's byte stream, once the VMM has connected it. Rejects if the VM died first. */
  readonly channel: Promise<Duplex>
  /** Settles when the VM is gone. */
  readonly exited: Promise<VmExit>
  /**
   * Settles once the VMM no longer needs its input files (initrd, channel socket path), so the run
   * folder can go. Absent when the VMM read them before its launch returned.
   */
  readonly inputsLoaded?: Promise<void>
  /**
   * Guest RAM at its guest-physical addresses, read by the host without the guest's help (the kvm
   * VMM's own mapping; QEMU's shared RAM files). The guest keeps running: copy what you read
   * (readBytes, readU64) rather than hold views. Released when the VM exits: later accesses throw
   * GuestMemoryError. Absent for a VM without host-visible RAM (test stand-ins).
   */
  readonly memory?: GuestMemory
  /**
   * Every vCPU's registers, read now (each vCPU thread is kicked out of KVM_RUN once for it; a
   * bounded wait). The kvm VMM only: QEMU's registers are not read by the host.
   */
  vcpuRegisters?(): Promise<VcpuRegisters[]>
  /**
   * Stop the guest and write its whole state to `file` and the parts it returns (files beside it,
   * named `<file>.part-*`: the plan asked for `snapshot: save`); rejects with the VMM's reason.
   * The VM stays stopped: kill it afterwards.
   */
  saveSnapshot?(file: string): Promise<string[]>
  /** performance.now() when the VM was started. */
  readonly startedAt: number
  kill(): void
}

export interface VmExit {
  code: number | null
  signal: string | null
  /** The VMM's own diagnostics (QEMU's stderr), tail. */
  stderr: string
}

/** One vCPU's registers as hex strings (`rip`, `rsp`, `rflags`, `cr3`, `cr4`, `rax`…`r15`), or why there are none. */
export interface VcpuRegisters {
  /** The vCPU's index (0 = the boot CPU). */
  cpu: number
  regs?: Record<string, string>
  noAnswer?: string
}
