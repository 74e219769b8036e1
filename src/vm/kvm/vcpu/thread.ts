/**
 * The main thread's handle on one vCPU thread (run-loop.ts): starts it, answers its device accesses, kicks it
 * out of KVM_RUN and waits for it to leave.
 */
import { Worker } from 'node:worker_threads'
import { RUN_OFFSETS } from '../../../../native-shims/kvm/abi.js'
import { munmap, tgkill, view } from '../../../../native-shims/libc.js'
import { log } from '../../../util/log.js'
import { Answer, CONTROL_INTS, Kind, Slot, State, TerminalReason, type VcpuReport, type VcpuThreadData } from './protocol.js'
import type { VcpuState } from './state.js'

export interface DeviceAccess {
  kind: 'io' | 'mmio'
  write: boolean
  size: number
  addr: number
  value: bigint
}

/** What a device bus says to an access: the value read (ignored for writes) and whether to stop. */
export interface AccessResult {
  value?: bigint
  stop?: 'power-off' | 'reset'
}

export interface VcpuExit {
  reason: TerminalReason
  detail: number
  exits: number
}

type SnapshotMessage = { kind: 'paused' } | { kind: 'state'; state: VcpuState } | { kind: 'state-failed'; message: string }

const runLoopUrl = new URL('./run-loop.js', import.meta.url)

export class VcpuThread {
  private readonly control = new SharedArrayBuffer(CONTROL_INTS * 4)
  private readonly ctl = new Int32Array(this.control)
  private readonly worker: Worker
  private tid: number | undefined
  private pid: number | undefined
  private runPage: DataView | undefined
  private runAddr: bigint | undefined
  private gone = false
  private serving = true
  private readonly kickSignal: number
  /** Callers of report() waiting for the next report. */
  private waiters: ((r: VcpuReport | undefined) => void)[] = []
  /** A snapshot's pause and save, answered by the thread's 'paused' and 'state' messages. */
  private snapshotWaiter: { kind: 'paused' | 'state'; done: (m: SnapshotMessage | undefined) => void } | undefined
  readonly ready: Promise<void>
  readonly exited: Promise<VcpuExit>

  constructor(
    opts: Omit<VcpuThreadData, 'control' | 'stats'> & {
      onAccess: (a: DeviceAccess) => AccessResult
      onError: (message: string) => void
      /** Debug: count exits and time the handshake; reports arrive here (see requestReport). */
      onReport?: (r: VcpuReport) => void
    },
  ) {
    this.kickSignal = opts.kickSignal
    this.worker = new Worker(runLoopUrl, {
      workerData: {
        vmFd: opts.vmFd,
        id: opts.id,
        runMmapSize: opts.runMmapSize,
        cpuid: opts.cpuid,
        xcr0: opts.xcr0,
        msrs: opts.msrs,
        boot: opts.boot,
        restore: opts.restore,
        save: opts.save,
        control: this.control,
        kickSignal: opts.kickSignal,
        stats: opts.onReport !== undefined,
      } satisfies VcpuThreadData,
    })
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (m: { kind: string; tid?: number; pid?: number; runAddr?: bigint; message?: string; report?: VcpuReport; refusedMsrs?: number[] }) => {
        if (m.kind === 'report') return this.reported(m.report!, opts.onReport)
        if (m.kind === 'paused' || m.kind === 'state' || m.kind === 'state-failed') return this.snapshotAnswer(m as SnapshotMessage)
        if (m.kind === 'ready') {
          if (m.refusedMsrs?.length)
            log.debug(`kvm: vCPU ${opts.id} kept the reset value of MSRs ${m.refusedMsrs.map((i) => `0x${i.toString(16)}`).join(', ')}: KVM refused the saved ones`)
          this.tid = m.tid
          this.pid = m.pid
          this.runAddr = m.runAddr!
          this.runPage = new DataView(view(m.runAddr!, opts.runMmapSize))
          resolve()
        } else if (m.kind === 'error') opts.onError(`vCPU ${opts.id}: ${m.message}`)
      })
      this.worker.once('error', reject)
      this.worker.once('exit', () => reject(new Error(`vCPU ${opts.id} thread exited during set-up`)))
    })
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', () => {
        this.serving = false
        this.gone = true
        this.runPage = undefined
        this.reported(undefined)
        this.snapshotAnswer(undefined)
        if (this.runAddr !== undefined) munmap(this.runAddr, opts.runMmapSize)
        resolve({
          reason: (Atomics.load(this.ctl, Slot.Terminal) || TerminalReason.Failed) as TerminalReason,
          detail: this.ctl[Slot.Detail]!,
          exits: this.ctl[Slot.Exits]!,
        })
      })
      this.worker.on('error', (e) => opts.onError(`vCPU ${opts.id}: ${e.message}`))
    })
    void this.serve(opts.onAccess)
  }

  /** Answer the vCPU thread's requests as they come, until it exits. */
  private async serve(onAccess: (a: DeviceAccess) => AccessResult): Promise<void> {
    const ctl = this.ctl
    while (this.serving) {
      const state = Atomics.load(ctl, Slot.State)
      if (state !== State.Request) {
        const w = Atomics.waitAsync(ctl, Slot.State, state, 200)
        if (w.async) await w.value
        continue
      }
      const addr = (ctl[Slot.AddrLo]! >>> 0) + (ctl[Slot.AddrHi]! >>> 0) * 0x1_0000_0000
      const value = (BigInt(ctl[Slot.DataHi]! >>> 0) << 32n) | BigInt(ctl[Slot.DataLo]! >>> 0)
      let result: AccessResult
      try {
        result = onAccess({
          kind: ctl[Slot.Kind] === Kind.Io ? 'io' : 'mmio',
          write: ctl[Slot.IsWrite] === 1,
          size: ctl[Slot.Size]!,
          addr,
          value,
        })
      } catch {
        result = {}
      }
      const v = result.value ?? 0n
      ctl[Slot.DataLo] = Number(v & 0xffff_ffffn) | 0
      ctl[Slot.DataHi] = Number((v >> 32n) & 0xffff_ffffn) | 0
      ctl[Slot.Kind] = result.stop === 'power-off' ? Answer.PowerOff : result.stop === 'reset' ? Answer.Reset : Answer.Continue
      Atomics.store(ctl, Slot.State, State.Response)
      Atomics.notify(ctl, Slot.State)
    }
  }

  /** Let the vCPU thread enter KVM_RUN (call once every vCPU of the VM exists). */
  start(): void {
    Atomics.store(this.ctl, Slot.Go, 1)
    Atomics.notify(this.ctl, Slot.Go)
  }

  /** Make the vCPU thread leave KVM_RUN and its loop: stop flag, immediate_exit, and a signal. */
  kick(): void {
    if (this.gone) return
    Atomics.store(this.ctl, Slot.Stop, 1)
    Atomics.notify(this.ctl, Slot.Go)
    Atomics.notify(this.ctl, Slot.Save)
    this.interrupt()
  }

  /**
   * For a snapshot: the vCPU leaves KVM_RUN with its last exit completed and waits (it never runs
   * the guest again; kick() ends it). Rejects when the thread is gone or does not answer in `timeoutMs`.
   */
  async pause(timeoutMs: number): Promise<void> {
    const answer = this.askSnapshot('paused', timeoutMs, () => {
      Atomics.store(this.ctl, Slot.Pause, 1)
      this.interrupt()
    })
    await answer
  }

  /** The state of a paused vCPU (every vCPU of the VM must be paused first). */
  async saveState(timeoutMs: number): Promise<VcpuState> {
    const m = await this.askSnapshot('state', timeoutMs, () => {
      Atomics.store(this.ctl, Slot.Save, 1)
      Atomics.notify(this.ctl, Slot.Save)
    })
    if (m.kind === 'state-failed') throw new Error(`vCPU state could not be read: ${m.message}`)
    if (m.kind !== 'state') throw new Error(`the vCPU answered '${m.kind}' to a save`)
    return m.state
  }

  private askSnapshot(kind: 'paused' | 'state', timeoutMs: number, ask: () => void): Promise<SnapshotMessage> {
    if (this.gone) return Promise.reject(new Error('the vCPU thread is gone'))
    if (this.snapshotWaiter) return Promise.reject(new Error(`a vCPU snapshot step is already under way`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.snapshotWaiter = undefined
        reject(new Error(`the vCPU did not answer '${kind}' within ${timeoutMs} ms`))
      }, timeoutMs)
      this.snapshotWaiter = {
        kind,
        done: (m) => {
          clearTimeout(timer)
          this.snapshotWaiter = undefined
          if (m) resolve(m)
          else reject(new Error('the vCPU thread ended during a snapshot'))
        },
      }
      ask()
    })
  }

  private snapshotAnswer(m: SnapshotMessage | undefined): void {
    const w = this.snapshotWaiter
    if (!w) return
    if (m === undefined || m.kind === w.kind || (w.kind === 'state' && m.kind === 'state-failed')) w.done(m)
  }

  /** Have the vCPU thread report its registers (and, in debug, exit statistics) through onReport or report(). */
  requestReport(): void {
    if (this.gone) return
    Atomics.store(this.ctl, Slot.Report, 1)
    this.interrupt()
  }

  /**
   * The vCPU's registers now: the thread is kicked out of KVM_RUN and reports before it re-enters.
   * Undefined when it does not answer within `timeoutMs` (busy in a device access, or gone).
   */
  report(timeoutMs: number): Promise<VcpuReport | undefined> {
    if (this.gone) return Promise.resolve(undefined)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done)
        resolve(undefined)
      }, timeoutMs)
      const done = (r: VcpuReport | undefined) => {
        clearTimeout(timer)
        resolve(r)
      }
      this.waiters.push(done)
      this.requestReport()
    })
  }

  /** A report goes to the report() callers waiting for one, else (debug) to onReport. */
  private reported(r: VcpuReport | undefined, onReport?: (r: VcpuReport) => void): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w(r)
    if (!waiters.length && r) onReport?.(r)
  }

  /** Get the vCPU thread out of KVM_RUN (or keep it from entering): immediate_exit and a signal. */
  private interrupt(): void {
    this.runPage?.setUint8(RUN_OFFSETS.immediate_exit, 1)
    if (this.tid !== undefined && this.pid !== undefined) {
      try {
        tgkill(this.pid, this.tid, this.kickSignal)
      } catch {
        /* already gone */
      }
    }
  }
}
