/**
 * A booted guest, whatever the backend: its channel, its console, and how it ended. What to boot
 * is a VmRequest (spec/request.ts).
 */
import type { HostEndpoint, SchedulerExit } from '../../runtime/protocol/index.js'
import type { MonitorStatus } from '../monitor/attach.js'
import type { GuestMemory } from './memory/guest-memory.js'

/** Host-side wall-clock milestones in ms since the boot request. */
export interface BootTiming {
  imageMs?: number
  /** VM process/threads started. */
  vmStartedMs?: number
  /** Warm start: the VM was restored from its snapshot (the guest then gets its run over the channel). */
  restoredMs?: number
  /** Watch mode: the VM was restored ahead of this run (src/vm/warm/standby.ts); vmStartedMs is then 0. */
  standby?: true
  /** Watch mode: the guest restored ahead was primed with this run's files (the run before it had the same), so none were sent. */
  primed?: true
  /** Watch mode: the guest restored ahead started this run's scheduler while it waited (its files were the primed ones). */
  schedulerAhead?: true
  /** First kernel console output. */
  kernelMs?: number
  /** Guest init said hello on the channel. */
  initMs?: number
  /** Guest uptime when its init said hello: the kernel's own boot time. */
  guestKernelMs?: number
  /** Command (or Vitest worker) started in the guest. */
  commandMs?: number
  /** Command finished. */
  exitMs?: number
  /** VM gone. */
  endMs?: number
}

export type GuestOutcome =
  /** The guest ran its command to the end and reported its exit. */
  | { kind: 'exited'; code: number | null; signal: string | null }
  | { kind: 'scheduler-failed'; scheduler: string; message: string; exit?: SchedulerExit }
  | { kind: 'scheduler-exited'; scheduler: string; exit: SchedulerExit }
  | { kind: 'panic'; message: string }
  | { kind: 'timeout'; afterS: number }
  /** The host's stall watchdog (src/monitor/stall.ts) saw a task or CPU stall; `message` is its one line. */
  | { kind: 'stall'; message: string }
  /** The VM went away without the guest reporting an exit (boot failure, crash, killed). */
  | { kind: 'vm-died'; message: string }
  | { kind: 'channel-corrupt'; message: string }
  /** The guest sent a message that failed its schema (MalformedMessage's one line). */
  | { kind: 'malformed-message'; message: string }
  | { kind: 'guest-error'; message: string }
  | { kind: 'stopped' }

export interface GuestSession {
  readonly channel: HostEndpoint
  /** Settles once the VM is gone and everything is cleaned up; never rejects. */
  readonly done: Promise<GuestOutcome>
  readonly timing: BootTiming
  /** Guest RAM as the host reads it without the guest's help (VmProcess.memory). */
  readonly memory?: GuestMemory
  /**
   * The host's monitor of this guest (per-CPU samples read from guest RAM), or why there is none:
   * settles soon after the guest's init is up.
   */
  readonly monitor: Promise<MonitorStatus>
  /** The last `n` lines of the kernel console (ttyS0). */
  consoleTail(n?: number): string[]
  /** Ask the guest to power off; kill the VM if it has not within a grace period. */
  stop(): Promise<GuestOutcome>
  /** Kill the VM now. */
  kill(): void
}
