import type { Duplex } from 'node:stream'
import type { ConsoleLog } from './console.js'

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
