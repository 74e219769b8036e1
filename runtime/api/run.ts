/**
 * `run()`: create the scenario's cgroups, start every workload together (two-phase start), play the
 * steps with their holds, stop the workloads, tear everything down, and return the report.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { formatCpuList, intersect, parseCpuList } from '../protocol/cpulist.js'
import { KtstrError } from '../protocol/errors.js'
import type { AffinityInput, CgroupDef, CpusetInput, WorkerGroup } from './cgroup.js'
import { CgroupTree } from './cgroupfs.js'
import { type Duration, parseDuration } from './duration.js'
import { monitor, runWindow } from './monitor.js'
import { bridge } from './monitor-bridge.js'
import { Report, type ReportData, type StepRecord, type WorkerTelemetry } from './report.js'
import { SchedulerWatch } from './scheduler.js'
import { describeOp, holdMs, type Op, runLengthMs, type Step } from './steps.js'
import { type CpusetChange, type Placement, toTelemetry, type WorkloadContext } from './telemetry.js'
import { type Topo, topology } from './topology/topo.js'
import { describeWork, isPaired, type WorkSpec } from './work.js'
import { monotonicNs, setAffinity, setScheduler, WorkloadProcess, workloadBinary } from './workload-process.js'

export interface RunOptions {
  /** Total run time (default 2 s, ktstr's duration_s); with steps, the time shares ('25%') refer to. */
  duration?: Duration
  /** Cgroups that live for the whole run. */
  cgroups?: readonly CgroupDef[]
  steps?: readonly Step[]
  /** Topology for cpuset helpers (default: this machine's). */
  topology?: Topo
  /** A name for messages (canned scenarios set it). */
  name?: string
  /** What the scenario needs; run() refuses with a clear error otherwise (see skipReason()). */
  requires?: { llcs?: number; nodes?: number; usableCpus?: number }
  /**
   * Ends the run early (workloads stopped, cgroups removed, run() rejects), or takes it out of the
   * queue: pass the test's `signal` so a timed-out test does not keep the guest for the next one.
   */
  signal?: AbortSignal
}

/** Workloads stop by themselves this long after the planned end, should the test process vanish. */
const SAFETY_MS = 60_000
/** Bytes of a block device each io-sync workload writes to (16 × 64 KiB). */
const IO_REGION = 16 * 64 * 1024

/** Why this scenario cannot run on `topo`, or undefined when it can. */
export function skipReason(opts: RunOptions, topo: Topo = topology()): string | undefined {
  const r = opts.requires
  if (!r) return undefined
  const what = opts.name ? `scenario ${opts.name}` : 'this scenario'
  if (r.llcs && topo.llcs.length < r.llcs) return `${what} needs at least ${r.llcs} LLCs; this guest has ${topo.llcs.length} (${topo})`
  if (r.nodes && topo.nodes.length < r.nodes) return `${what} needs at least ${r.nodes} NUMA nodes; this guest has ${topo.nodes.length} (${topo})`
  if (r.usableCpus && topo.usableCpus().length < r.usableCpus) {
    return `${what} needs at least ${r.usableCpus} usable CPUs; this guest has ${topo.usableCpus().length} (${topo})`
  }
  return undefined
}

interface LiveWorkload {
  id: number
  proc: WorkloadProcess
  cgroup: string
  current: string
  work: WorkSpec
  affinity?: number[]
  goNs: number
  placements: Placement[]
  telemetry?: WorkerTelemetry
}

class Runner {
  readonly topo: Topo
  private tree!: CgroupTree
  private tmpDir!: string
  private binaryPath: string | undefined
  private t0 = 0
  private plannedEndNs = 0
  private nextId = 0
  private readonly workloads: LiveWorkload[] = []
  /** Configured cpusets (what we wrote), and effective-cpuset history, per cgroup. */
  private readonly configured = new Map<string, number[]>()
  private readonly history = new Map<string, CpusetChange[]>()
  private readonly live = new Set<string>()
  private readonly stepRecords: StepRecord[] = []

  private readonly plannedMs: number
  private readonly holds: number[]
  /** How long run() waited for the runs before it (set before execute). */
  queuedMs = 0

  /** Checks the options at once, so a bad one fails without waiting for the runs before it. */
  constructor(readonly opts: RunOptions) {
    this.topo = opts.topology ?? topology()
    const why = skipReason(this.opts, this.topo)
    if (why) throw new KtstrError(why)
    const totalMs = this.opts.duration === undefined ? undefined : parseDuration(this.opts.duration)
    const steps = this.opts.steps ?? []
    this.holds = steps.map((s) => holdMs(s.hold, totalMs))
    this.plannedMs = runLengthMs(totalMs, this.holds)
  }

  private get binary(): string {
    this.binaryPath ??= workloadBinary()
    return this.binaryPath
  }

  async execute(): Promise<Report> {
    const { plannedMs, holds } = this
    const steps = this.opts.steps ?? []
    this.tree = new CgroupTree()
    this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-run-'))
    this.t0 = monotonicNs()
    this.plannedEndNs = this.t0 + plannedMs * 1e6
    this.history.set('/', [{ atNs: this.t0, doneNs: this.t0, cpus: [...this.topo.cpus] }])
    const watch = new SchedulerWatch()
    const restore = this.liftSelf()
    try {
      const backdrop = this.opts.cgroups ?? []
      this.checkUnique(backdrop.map((d) => d.name))
      const initial = this.createCgroups(backdrop)
      await this.startWorkloads(initial, (goNs) => {
        // The run starts when the first workloads go.
        this.t0 = goNs
        this.plannedEndNs = goNs + plannedMs * 1e6
        watch.start(goNs)
      })

      for (const [k, s] of steps.entries()) await this.runStep(k, s, holds[k]!)
      const left = this.plannedEndNs - monotonicNs()
      if (left > 0) await this.sleep(left / 1e6)

      const endNs = monotonicNs()
      const scheduler = watch.finish()
      await this.stop(
        this.workloads.filter((w) => !w.telemetry),
        endNs,
      )
      return new Report(this.reportData(endNs, scheduler))
    } finally {
      watch.finish()
      await Promise.all(this.workloads.filter((w) => w.proc.isRunning).map((w) => w.proc.kill()))
      restore()
      await this.tree.destroy().catch(() => {})
      fs.rmSync(this.tmpDir, { recursive: true, force: true })
    }
  }

  /**
   * Run the test process's main thread as SCHED_FIFO 99 for the run, outside the scheduler under
   * test. Otherwise a SCHED_FIFO workload can keep it off its CPU (e.g. after sched_ext queued it on
   * that CPU's local DSQ while the CPU was idle) and nobody is left to stop the workload: measured
   * as scx_simple ejected for "node[1] failed to run for 38.228s". Children start as SCHED_OTHER.
   * Returns the undo; without permission it does nothing.
   */
  private liftSelf(): () => void {
    try {
      const before = setScheduler(process.pid, 'fifo', 99, this.binary)
      return () => {
        try {
          setScheduler(process.pid, before.policy, before.priority, this.binary)
        } catch {
          /* best effort */
        }
      }
    } catch {
      return () => {}
    }
  }

  /** A hold of the run; rejects when the run's signal aborts. */
  private sleep(ms: number): Promise<void> {
    const signal = this.opts.signal
    if (!signal) return sleep(ms)
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer)
        reject(aborted(signal, 'while running'))
      }
      const timer = setTimeout(
        () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
        Math.max(0, ms),
      )
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  private checkUnique(names: string[]): void {
    const seen = new Set<string>()
    for (const n of names) {
      if (seen.has(n) || this.live.has(n)) throw new KtstrError(`cgroup "${n}" is defined twice in this run`)
      seen.add(n)
    }
  }

  private rel(ns: number): number {
    return Math.max(0, (ns - this.t0) / 1e6)
  }

  private resolveCpuset(name: string, c: CpusetInput): number[] {
    const cpus = typeof c === 'function' ? [...c(this.topo)] : typeof c === 'string' ? parseCpuList(c) : [...c]
    try {
      return this.topo.exact(cpus)
    } catch (e) {
      throw new KtstrError(`cgroup "${name}": ${(e as Error).message}`)
    }
  }

  /** Create cgroups (with cpusets); returns the workload groups to start. */
  private createCgroups(defs: readonly CgroupDef[]): { cgroup: string; group: WorkerGroup }[] {
    const pending: { cgroup: string; group: WorkerGroup }[] = []
    for (const d of defs) {
      this.tree.create(d.name)
      for (const seg of ancestors(d.name)) this.live.add(seg)
      if (d.cpusetInput !== undefined) {
        const cpus = this.resolveCpuset(d.name, d.cpusetInput)
        this.tree.setCpus(d.name, cpus)
        this.configured.set(d.name, cpus)
      }
      for (const g of d.groups) pending.push({ cgroup: d.name, group: g })
    }
    this.refreshCpusets()
    return pending
  }

  /**
   * Record effective cpusets that changed. A change is in flight from `atNs` (before the write) until
   * now (after it): the isolation check accepts old and new CPUs in between.
   */
  private refreshCpusets(atNs = monotonicNs()): void {
    const doneNs = monotonicNs()
    for (const name of this.live) {
      const cpus = this.tree.effectiveCpus(name)
      const h = this.history.get(name) ?? []
      const last = h.at(-1)
      if (!last || formatCpuList(last.cpus) !== formatCpuList(cpus)) h.push({ atNs, doneNs, cpus })
      this.history.set(name, h)
    }
  }

  private cpusetOf(name: string): number[] {
    return name === '/' ? [...this.topo.cpus] : this.tree.effectiveCpus(name)
  }

  private resolveAffinity(a: AffinityInput | undefined, i: number, cgroupName: string): number[] | undefined {
    if (a === undefined || a === 'inherit') return undefined
    const cpus = this.cpusetOf(cgroupName)
    let want: number[]
    if (a === 'single-cpu') want = [cpus[i % cpus.length]!]
    else if (a === 'llc-aligned') {
      const llcs = this.topo.llcsWithin(cpus)
      want = llcs[i % llcs.length]!
    } else if (a === 'random-subset') {
      const shuffled = [...cpus].sort(() => Math.random() - 0.5)
      want = shuffled.slice(0, Math.max(1, Math.ceil(cpus.length / 2)))
    } else if (a === 'cross-cgroup') want = [...this.topo.cpus]
    else if (typeof a === 'function') want = [...a(this.topo, i, cpus)]
    else if (typeof a === 'string') want = parseCpuList(a)
    else want = [...a]
    const inside = a === 'cross-cgroup' ? want : intersect(want, cpus)
    if (inside.length === 0) {
      throw new KtstrError(`affinity ${formatCpuList(want)} of worker ${i} in cgroup "${cgroupName}" has no CPU inside its cpuset ${formatCpuList(cpus)}`)
    }
    return inside.sort((x, y) => x - y)
  }

  /** Spawn, place, set up, then start all of `groups` at one instant. */
  private async startWorkloads(groups: { cgroup: string; group: WorkerGroup }[], onGo?: (goNs: number) => void): Promise<void> {
    const batch: LiveWorkload[] = []
    try {
      for (const { cgroup, group } of groups) {
        for (let i = 0; i < group.count; i++) {
          const id = this.nextId++
          const affinity = this.resolveAffinity(group.affinity, i, cgroup)
          const pairBase = isPaired(group.work) ? id - (i % 2) : undefined
          const label = `worker ${id} (cgroup "${cgroup}", ${describeWork(group.work)})`
          const proc = new WorkloadProcess(
            label,
            {
              work: group.work,
              ...(affinity ? { affinity } : {}),
              ...(pairBase !== undefined ? { pair: { path: path.join(this.tmpDir, `pair-${pairBase}`), role: (i % 2) as 0 | 1 } } : {}),
              ioOffset: id * IO_REGION,
              maxMs: (this.plannedEndNs - monotonicNs()) / 1e6 + SAFETY_MS,
              seed: id + 1,
            },
            this.binary,
          )
          const w: LiveWorkload = { id, proc, cgroup, current: cgroup, work: group.work, goNs: 0, placements: [{ atNs: 0, doneNs: 0, cgroup }] }
          if (affinity) w.affinity = affinity
          batch.push(w)
          this.workloads.push(w)
          if (cgroup !== '/') this.tree.addProc(cgroup, proc.pid)
        }
      }
      await Promise.all(batch.map((w) => w.proc.setup()))
    } catch (e) {
      await Promise.all(batch.map((w) => w.proc.kill()))
      for (const w of batch) this.workloads.splice(this.workloads.indexOf(w), 1)
      throw e
    }
    const goNs = monotonicNs()
    onGo?.(goNs)
    for (const w of batch) {
      w.goNs = goNs
      w.placements[0]!.atNs = goNs
      w.placements[0]!.doneNs = goNs
      w.proc.go(goNs)
    }
  }

  private async stop(list: LiveWorkload[], atNs = monotonicNs()): Promise<void> {
    const raws = await Promise.allSettled(list.map((w) => w.proc.stop(atNs)))
    const failed: string[] = []
    raws.forEach((r, i) => {
      const w = list[i]!
      if (r.status === 'fulfilled') {
        const ctx: WorkloadContext = { ...w, runT0Ns: this.t0, history: this.history }
        w.telemetry = toTelemetry(ctx, r.value)
      } else failed.push((r.reason as Error).message)
    })
    if (failed.length) throw new KtstrError(failed.join('; '))
  }

  private running(name: string, withChildren = false): LiveWorkload[] {
    return this.workloads.filter((w) => !w.telemetry && (w.current === name || (withChildren && w.current.startsWith(`${name}/`))))
  }

  private requireCgroup(name: string, what: string): void {
    if (!this.live.has(name)) {
      throw new KtstrError(`${what}: no cgroup "${name}" in this run (have ${[...this.live].map((n) => `"${n}"`).join(', ') || 'none'})`)
    }
  }

  private async runStep(index: number, s: Step, hold: number): Promise<void> {
    const rec: StepRecord = { index, atMs: 0, ops: (s.ops ?? []).map(describeOp) }
    if (s.label) rec.label = s.label
    const start = monotonicNs()
    rec.atMs = Math.round(this.rel(start))
    this.stepRecords.push(rec)
    await this.runOps(s.ops ?? [])
    const own = s.cgroups ?? []
    if (own.length) {
      this.checkUnique(own.map((d) => d.name))
      await this.startWorkloads(this.createCgroups(own))
    }
    // The hold counts from when the step's state is in place: starting workloads can take a large
    // part of a short hold on a loaded or emulated guest, and they must get the whole of it.
    const held = monotonicNs()
    const end = held + hold * 1e6
    if (s.every !== undefined) {
      const every = parseDuration(s.every, 'every')
      if (every <= 0) throw new KtstrError('step every must be above 0 ms')
      for (let next = held + every * 1e6; next < end; next += every * 1e6) {
        await this.sleep((next - monotonicNs()) / 1e6)
        await this.runOps(s.ops ?? [])
      }
    }
    await this.sleep((end - monotonicNs()) / 1e6)
    for (const d of own) await this.removeCgroup(d.name)
  }

  private async removeCgroup(name: string): Promise<void> {
    await this.stop(this.running(name, true))
    this.refreshCpusets()
    await this.tree.remove(name)
    for (const n of [...this.live]) if (n === name || n.startsWith(`${name}/`)) this.live.delete(n)
  }

  private async runOps(ops: readonly Op[]): Promise<void> {
    for (const o of ops) {
      switch (o.kind) {
        case 'add-cgroup':
          this.checkUnique([o.def.name])
          await this.startWorkloads(this.createCgroups([o.def]))
          break
        case 'remove-cgroup':
          this.requireCgroup(o.name, 'op.removeCgroup')
          await this.removeCgroup(o.name)
          break
        case 'set-cpuset': {
          this.requireCgroup(o.name, 'op.setCpuset')
          const cpus = this.resolveCpuset(o.name, o.cpus)
          const at = monotonicNs()
          this.tree.setCpus(o.name, cpus)
          this.configured.set(o.name, cpus)
          this.refreshCpusets(at)
          break
        }
        case 'clear-cpuset': {
          this.requireCgroup(o.name, 'op.clearCpuset')
          const at = monotonicNs()
          this.tree.setCpus(o.name, [])
          this.configured.delete(o.name)
          this.refreshCpusets(at)
          break
        }
        case 'swap-cpusets': {
          this.requireCgroup(o.a, 'op.swapCpusets')
          this.requireCgroup(o.b, 'op.swapCpusets')
          const a = this.configured.get(o.a) ?? []
          const b = this.configured.get(o.b) ?? []
          const at = monotonicNs()
          this.tree.setCpus(o.a, b)
          this.tree.setCpus(o.b, a)
          if (b.length) this.configured.set(o.a, b)
          else this.configured.delete(o.a)
          if (a.length) this.configured.set(o.b, a)
          else this.configured.delete(o.b)
          this.refreshCpusets(at)
          break
        }
        case 'spawn':
          this.requireCgroup(o.name, 'op.spawn')
          await this.startWorkloads([{ cgroup: o.name, group: { count: o.count, work: o.work, ...(o.affinity !== undefined ? { affinity: o.affinity } : {}) } }])
          break
        case 'spawn-host': {
          let count = o.count === 'per-cpu' ? this.topo.numCpus : o.count
          if (isPaired(o.work) && count % 2) count++
          await this.startWorkloads([{ cgroup: '/', group: { count, work: o.work } }])
          break
        }
        case 'stop':
          this.requireCgroup(o.name, 'op.stop')
          await this.stop(this.running(o.name))
          break
        case 'set-affinity': {
          this.requireCgroup(o.name, 'op.setAffinity')
          for (const [i, w] of this.running(o.name).entries()) {
            const cpus = this.resolveAffinity(o.affinity, i, o.name) ?? this.cpusetOf(o.name)
            setAffinity(w.proc.pid, cpus, this.binary)
            w.affinity = cpus
          }
          break
        }
        case 'move-tasks': {
          this.requireCgroup(o.from, 'op.moveTasks')
          this.requireCgroup(o.to, 'op.moveTasks')
          for (const w of this.running(o.from)) {
            const atNs = monotonicNs()
            this.tree.addProc(o.to, w.proc.pid)
            w.current = o.to
            w.placements.push({ atNs, doneNs: monotonicNs(), cgroup: o.to })
          }
          break
        }
      }
    }
  }

  private reportData(endNs: number, scheduler: ReportData['scheduler']): ReportData {
    const cgroupCpusets: ReportData['cgroupCpusets'] = {}
    for (const [name, h] of this.history) {
      if (name !== '/' || this.workloads.some((w) => w.cgroup === '/')) cgroupCpusets[name] = h.map((e) => ({ atMs: this.rel(e.atNs), cpus: e.cpus }))
    }
    return {
      version: 1,
      durationMs: this.rel(endNs),
      span: { startNs: this.t0, endNs },
      queuedMs: this.queuedMs,
      topology: String(this.topo),
      scheduler,
      workers: this.workloads
        .map((w) => w.telemetry!)
        .filter(Boolean)
        .sort((a, b) => a.id - b.id),
      cgroupCpusets,
      steps: this.stepRecords,
    }
  }
}

function ancestors(name: string): string[] {
  const segs = name.split('/')
  return segs.map((_, i) => segs.slice(0, i + 1).join('/'))
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)))

function aborted(signal: AbortSignal, when: string): KtstrError {
  const why = signal.reason instanceof Error ? signal.reason.message : String(signal.reason)
  return new KtstrError(`run() aborted ${when}: ${why}`)
}

/**
 * Runs in one guest share its CPUs and cgroups, so they take turns: each starts once the one before
 * has torn down (test.concurrent, or two run() calls not awaited in turn). This is the end of the queue.
 */
let lastRun: Promise<void> = Promise.resolve()
let queued = 0

/** Wait for the runs before this one; the returned release lets the next one go. */
async function takeTurn(signal: AbortSignal | undefined): Promise<() => void> {
  const before = lastRun
  let release!: () => void
  lastRun = new Promise<void>((resolve) => (release = resolve))
  if (queued++ > 0) {
    console.info('ktstr: run() waits for the run() before it in this guest to finish (runs in one guest take turns; the wait counts toward the test timeout)')
  }
  const done = () => {
    queued--
    release()
  }
  if (!signal) {
    await before
    return done
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(aborted(signal, 'while waiting for the run() before it'))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      before.then(() => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      })
    })
  } catch (e) {
    // Our turn is passed on once the run before ends, so the queue keeps its order.
    before.then(done)
    throw e
  }
  return done
}

/** Run a scenario in this guest and report what every workload saw. */
export async function run(opts: RunOptions): Promise<Report> {
  const runner = new Runner(opts)
  const queuedAt = monotonicNs()
  const release = await takeTurn(opts.signal)
  try {
    runner.queuedMs = Math.round((monotonicNs() - queuedAt) / 1e6)
    if (opts.signal?.aborted) throw aborted(opts.signal, 'before it started')
    const mark = bridge() ? await monitor.mark() : undefined
    const report = await runner.execute()
    const window = await runWindow(mark)
    if (window) report.data.monitor = window
    return report
  } finally {
    release()
  }
}
