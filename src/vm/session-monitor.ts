/**
 * The host's monitor of one guest session (src/monitor): the kernel's BTF is read while the guest
 * boots, the Monitor starts once the guest's init said hello, and stops when the guest has
 * reported its result (its power-off is not watched) or is gone. A stall goes to `onStall`, which
 * ends the run. When the monitor cannot run, it is off with one line saying why; the run goes on.
 */
import type { KernelBtfSource } from '../kernel/btf-cache.js'
import type { KernelModel, MonitorStatus } from '../monitor/attach.js'
import type { Stall } from '../monitor/stall.js'
import { log } from '../util/log.js'
import type { VmProcess } from './vm-process.js'

export interface MonitorPlan {
  kernel: KernelBtfSource
  /** The kernel's BTF and layout when already read (else read from `kernel` while the guest boots). */
  model?: KernelModel
  /** The guest's CPUs. */
  cpus: number
  /** Samples per second, or off (no monitor). */
  hz: number | 'off'
  /** Stall threshold, or off (no watchdog). */
  stallMs: number | 'off'
}

export interface SessionMonitor {
  /** The monitor once it runs, or why it does not; settles after the guest's hello (or its end). */
  readonly status: Promise<MonitorStatus>
  /**
   * Work out the kernel's model and parse its BTF now (a few hundredths of a second of this
   * thread; extracting a BTF never seen takes seconds): called while the guest boots or unpacks
   * its run, so start() and the first sample find them ready.
   */
  prepare(): void
  /** The guest's init is up: find its per-CPU areas and start sampling (reading the BTF if prepare() did not). */
  start(): void
  /**
   * Read which scheduler is attached now (the guest attached one, or is about to end); with
   * `keepMaps`, also keep the maps and globals (at most a second) for a dump taken after the VM is
   * gone: the host is about to kill it (a timeout), or the scheduler exited.
   */
  readScheduler(opts?: { keepMaps?: boolean }): void
  /** Stop sampling (the samples stay). */
  stop(): void
}

/**
 * The monitor's code (BTF, layouts, maps: a twentieth of a second of module loading), imported on
 * first use: a warm start's VMM is then already running while it loads, instead of waiting for it.
 */
let monitorCode: Promise<typeof import('../monitor/attach.js')> | undefined
const loadMonitorCode = () => (monitorCode ??= import('../monitor/attach.js'))

export function sessionMonitor(vm: VmProcess, plan: MonitorPlan | undefined, onStall: (stall: Stall) => void): SessionMonitor {
  let settle!: (s: MonitorStatus) => void
  const status = new Promise<MonitorStatus>((r) => (settle = r))
  let settled: MonitorStatus | undefined
  void status.then((s) => (settled = s))
  let stopped = false
  let started = false
  const off = (reason: string, loud: boolean) => {
    if (loud) log.warn(`monitor off: ${reason}`)
    else log.debug(`monitor off: ${reason}`)
    settle({ on: false, reason })
  }
  let model: KernelModel | undefined = plan?.model

  return {
    status,
    prepare() {
      if (started || stopped || !plan || plan.hz === 'off' || !vm.memory) return
      void loadMonitorCode().then((code) => {
        if (started || stopped) return
        model ??= code.kernelModel(plan.kernel)
        // The first sample reads the scheduler's state, which needs the BTF: parse it now, while
        // the guest unpacks, rather than in a sample.
        try {
          if (model.ok) model.btf()
        } catch {
          // The sample that reads it says why.
        }
      })
    },
    start() {
      if (started) return
      started = true
      if (!plan) return off('no monitor was asked for this VM', false)
      if (plan.hz === 'off') return off('monitor-hz=off', false)
      if (!vm.memory) return off('this VM does not share its RAM with the host', false)
      const hz = plan.hz
      const memory = vm.memory
      void loadMonitorCode()
        .then((code) =>
          code.openMonitor(memory, (model ??= code.kernelModel(plan.kernel)), {
            cpus: plan.cpus,
            kernel: plan.kernel,
            hz,
            ...(plan.stallMs !== 'off' && { stallMs: plan.stallMs }),
            onStall,
            ...(vm.vcpuRegisters && { registers: () => vm.vcpuRegisters!() }),
          }),
        )
        .then(
          (s) => {
            // Not worth a warning when the guest was done first (a short command ends before a scan).
            if (!s.on) return off(s.reason, !stopped && !vm.memory?.isReleased)
            log.debug(`monitor: ${s.monitor.cpus} CPUs at ${hz} Hz (per-CPU scan ${s.scanMs.toFixed(1)} ms)`)
            if (stopped) s.monitor.stop()
            settle(s)
          },
          (e: unknown) => off(`internal error: ${(e as Error).message}`, true),
        )
    },
    readScheduler(opts = {}) {
      if (stopped) return
      const read = (s: MonitorStatus) => {
        if (!s.on) return
        s.monitor.scxState(true)
        if (opts.keepMaps) s.monitor.preserve()
      }
      // Now when the monitor runs (the caller may kill the VM next), else once it does.
      if (settled) read(settled)
      else void status.then(read)
    },
    stop() {
      if (stopped) return
      stopped = true
      if (!started) {
        started = true
        off('the guest ended before its init was up', false)
      }
      void status.then((s) => {
        if (!s.on) return
        s.monitor.stop()
        const c = s.monitor.cost()
        log.debug(`monitor: ${c.samples} samples, ${c.meanUs.toFixed(0)} µs each (max ${c.maxUs.toFixed(0)} µs)`)
      })
    },
  }
}
