/**
 * The monitor of a running guest: samples every CPU at a fixed rate from the host (no guest
 * help), keeps a bounded ring of samples stamped with host time, and runs the stall watchdog on
 * each. A read costs microseconds of host time and none of the guest's.
 */
import { describeError } from '../util/errors.js'
import { log } from '../util/log.js'
import { DEFAULT_MONITOR_HZ } from '../vm/defaults.js'
import type { VcpuRegisters } from '../vm/vm-process.js'
import { readSchedulerState, type SchedulerSnapshot } from './dump-read.js'
import type { Layout } from './layout.js'
import type { GuestKernelView } from './open-view.js'
import { type CpuSample, sampleCpu } from './sample.js'
import { readScxState, SCX_REFRESH_MS, type ScxState } from './scx-state.js'
import { type Stall, StallWatch } from './stall.js'

export interface MonitorSample {
  /** Host time of the sample, ms since the epoch (performance.timeOrigin + performance.now()). */
  readonly t: number
  readonly cpus: readonly CpuSample[]
  /** The attached sched_ext scheduler as last read (at most SCX_REFRESH_MS before `t`). */
  readonly scx?: ScxState
}

export interface MonitorOptions {
  /** Samples per second (default 10). */
  hz?: number
  /** Stall threshold in ms; undefined: no watchdog. */
  stallMs?: number
  /** Samples kept (default 3000: 5 minutes at 10 Hz). */
  ringSize?: number
  /** Called once, with the first stall found (after `preserve()`: the scheduler's maps are kept first). */
  onStall?: (stall: Stall) => void
  /** The backend's vCPU registers (VmProcess.vcpuRegisters: the kvm VMM), read every REGISTERS_REFRESH_MS. */
  registers?: () => Promise<VcpuRegisters[]>
}

/** How often the vCPU registers are read: each read kicks every vCPU out of KVM_RUN once. */
export const REGISTERS_REFRESH_MS = 1000

/** The vCPU registers as last read, with the host time they were (ms since the epoch). */
export interface KeptRegisters {
  readonly t: number
  readonly vcpus: readonly VcpuRegisters[]
}

const DEFAULT_RING = 3000

export const hostNow = (): number => performance.timeOrigin + performance.now()

export class Monitor {
  /** What the samples lack and why (e.g. no sched_ext event counters before Linux 6.15). */
  readonly notes: readonly string[]
  readonly hz: number
  private readonly ring: (MonitorSample | undefined)[]
  private next = 0
  private count = 0
  private timer: NodeJS.Timeout | undefined
  private readonly watch: StallWatch | undefined
  private found: Stall | undefined
  private costNs = 0n
  private costMaxNs = 0n
  private ticks = 0
  private scx: ScxState | undefined
  private scxAt = Number.NEGATIVE_INFINITY
  private kept: (SchedulerSnapshot & { t: number }) | undefined
  private regs: KeptRegisters | undefined
  private regsAt = Number.NEGATIVE_INFINITY

  constructor(
    readonly view: GuestKernelView,
    private readonly layout: Layout,
    private readonly opts: MonitorOptions = {},
  ) {
    this.hz = opts.hz ?? DEFAULT_MONITOR_HZ
    if (!(this.hz > 0 && this.hz <= 1000)) throw new RangeError(`monitor rate ${this.hz} Hz is not in (0, 1000]`)
    this.ring = new Array(opts.ringSize ?? DEFAULT_RING)
    this.watch = opts.stallMs !== undefined ? new StallWatch(opts.stallMs) : undefined
    this.notes = layout.eventsNote ? [layout.eventsNote] : []
  }

  get cpus(): number {
    return this.view.cpus
  }

  /** Start sampling at `hz` (the constructor does not). */
  start(): this {
    if (this.timer || this.view.mem.isReleased) return this
    this.timer = setInterval(() => this.tick(), 1000 / this.hz)
    this.timer.unref()
    return this
  }

  get running(): boolean {
    return this.timer !== undefined
  }

  /** Sample every CPU now; the sample is kept in the ring too. */
  sample(): MonitorSample {
    const t = hostNow()
    const cpus: CpuSample[] = new Array(this.view.cpus)
    for (let c = 0; c < cpus.length; c++) cpus[c] = sampleCpu(this.view, this.layout, c)
    if (t - this.scxAt >= SCX_REFRESH_MS) this.scxState(true)
    if (t - this.regsAt >= REGISTERS_REFRESH_MS) this.refreshRegisters(t)
    const s: MonitorSample = this.scx ? { t, cpus, scx: this.scx } : { t, cpus }
    this.ring[this.next] = s
    this.next = (this.next + 1) % this.ring.length
    this.count = Math.min(this.count + 1, this.ring.length)
    if (this.watch && !this.found) {
      const stall = this.watch.check(t, cpus)
      if (stall) {
        this.found = stall
        // The VM is killed on a stall: its scheduler's maps are read first, for the dump.
        this.preserve()
        this.opts.onStall?.(stall)
      }
    }
    return s
  }

  /** The newest sample, if any. */
  last(): MonitorSample | undefined {
    return this.count ? this.ring[(this.next - 1 + this.ring.length) % this.ring.length] : undefined
  }

  /** Kept samples taken at host times t0 ≤ t ≤ t1 (ms since the epoch), oldest first. */
  samplesBetween(t0 = Number.NEGATIVE_INFINITY, t1 = Number.POSITIVE_INFINITY): MonitorSample[] {
    const out: MonitorSample[] = []
    const len = this.ring.length
    for (let i = this.count; i > 0; i--) {
      const s = this.ring[(this.next - i + len) % len]!
      if (s.t >= t0 && s.t <= t1) out.push(s)
    }
    return out
  }

  /**
   * The attached sched_ext scheduler: the last one read, or read now when `refresh` (it costs the
   * host milliseconds). Undefined until read once, and when guest RAM is gone before that.
   */
  scxState(refresh = false): ScxState | undefined {
    if (!refresh || this.view.mem.isReleased) return this.scx
    this.scxAt = hostNow()
    try {
      this.scx = readScxState(this.view)
    } catch (e) {
      log.debug(`monitor: the attached scheduler was not read: ${describeError(e)}`)
    }
    return this.scx
  }

  /**
   * Read the guest's BPF maps and the scheduler's globals now (at most `budgetMs`) and keep them for
   * a dump taken after the VM is gone; called on a stall and when the scheduler exits.
   */
  preserve(budgetMs?: number): void {
    if (this.view.mem.isReleased) return
    const t = hostNow()
    this.kept = { t, ...readSchedulerState(this.view, budgetMs) }
    log.debug(`monitor: the scheduler's maps and globals kept for a dump in ${(hostNow() - t).toFixed(0)} ms`)
  }

  /** What preserve() read, with the host time it read it. */
  get preserved(): (SchedulerSnapshot & { t: number }) | undefined {
    return this.kept
  }

  /** Whether the backend gives vCPU registers (the kvm VMM). */
  get readsRegisters(): boolean {
    return this.opts.registers !== undefined
  }

  /** The vCPU registers as last read; undefined before the first read answered. */
  get registers(): KeptRegisters | undefined {
    return this.regs
  }

  /** Start a read of the vCPU registers (one at a time; the answer comes later). */
  private refreshRegisters(t: number): void {
    const read = this.opts.registers
    if (!read) return
    // Infinity until the read settles: no second read while one is waiting.
    this.regsAt = Number.POSITIVE_INFINITY
    read().then(
      (vcpus) => {
        this.regs = { t: hostNow(), vcpus }
        this.regsAt = t
      },
      (e: unknown) => {
        log.debug(`monitor: the vCPU registers were not read: ${describeError(e)}`)
        this.regsAt = t
      },
    )
  }

  /** The first stall the watchdog found. */
  get stall(): Stall | undefined {
    return this.found
  }

  /** Host cost of the timed samples so far: how many, mean and max µs each. */
  cost(): { samples: number; meanUs: number; maxUs: number } {
    const us = (ns: bigint) => Number(ns) / 1000
    return { samples: this.ticks, meanUs: this.ticks ? us(this.costNs) / this.ticks : 0, maxUs: us(this.costMaxNs) }
  }

  /** Stop sampling; the kept samples stay readable. */
  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private tick(): void {
    if (this.view.mem.isReleased) return this.stop()
    const t0 = process.hrtime.bigint()
    this.sample()
    const ns = process.hrtime.bigint() - t0
    this.ticks++
    this.costNs += ns
    if (ns > this.costMaxNs) this.costMaxNs = ns
  }
}
