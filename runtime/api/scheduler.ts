/**
 * The scheduler under test, seen from inside the test file: which one runs (sched_ext ops name, or
 * EEVDF when none is attached), whether it stays attached during a run, and sched_ext's exit reason
 * from the kernel log when it is ejected. Also starting/stopping one from the file (for A/B runs
 * when the file itself runs without a host-attached scheduler).
 */
import fs from 'node:fs'
import { schedExtLogLines } from '../init/kmsg.js'
import { startScheduler as initStart, type RunningScheduler } from '../init/scheduler.js'
import { KtstrError } from '../protocol/errors.js'
import { RUN_SPEC_PATH, type RunSpec } from '../protocol/index.js'
import type { SchedulerState } from './report.js'

const SCX = '/sys/kernel/sched_ext'

function readTrim(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch {
    return undefined
  }
}

export interface SchedExtStatus {
  /** 'enabled', 'disabled', … ; undefined without sched_ext in the kernel */
  state?: string
  ops?: string
  enableSeq?: number
}

export function schedExtStatus(): SchedExtStatus {
  const s: SchedExtStatus = {}
  const state = readTrim(`${SCX}/state`)
  const ops = readTrim(`${SCX}/root/ops`)
  const seq = readTrim(`${SCX}/enable_seq`)
  if (state !== undefined) s.state = state
  if (ops) s.ops = ops
  if (seq !== undefined && /^\d+$/.test(seq)) s.enableSeq = Number(seq)
  return s
}

const attached = (s: SchedExtStatus) => s.state === 'enabled' && !!s.ops

/** The name the host gave the scheduler (`scx_simple`), when the guest init started it. */
function hostSchedulerName(): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(RUN_SPEC_PATH, 'utf8')) as RunSpec).scheduler?.name
  } catch {
    return undefined
  }
}

let ownScheduler: { name: string; running: RunningScheduler } | undefined

/** The scheduler right now. */
export function currentScheduler(): SchedulerState {
  const s = schedExtStatus()
  if (!attached(s)) return { name: 'eevdf', kind: 'eevdf', attached: false, attachedAtStart: false }
  const name = ownScheduler?.name ?? hostSchedulerName() ?? `scx_${s.ops}`
  return { name, kind: 'sched_ext', ops: s.ops!, attached: true, attachedAtStart: true }
}

/**
 * Watches the scheduler through a run; `finish()` says whether it stayed attached, and why not.
 * Construct before the run (it reads the kernel log's baseline), `start(t0)` when it begins.
 */
export class SchedulerWatch {
  private readonly begin: SchedulerState
  private readonly startStatus: SchedExtStatus
  private readonly logBaseline: number
  private t0Ns = 0
  private detachedAtMs: number | undefined
  private timer: NodeJS.Timeout | undefined
  private finished: SchedulerState | undefined

  constructor(private readonly everyMs = 50) {
    this.startStatus = schedExtStatus()
    this.begin = currentScheduler()
    this.logBaseline = this.begin.kind === 'sched_ext' ? schedExtLogLines().length : 0
  }

  start(t0Ns: number): void {
    if (this.timer) return
    this.t0Ns = t0Ns
    this.timer = setInterval(() => this.poll(), this.everyMs)
    this.timer.unref()
  }

  private poll(): void {
    if (this.begin.kind !== 'sched_ext' || this.detachedAtMs !== undefined) return
    const s = schedExtStatus()
    if (!attached(s) || s.ops !== this.startStatus.ops || s.enableSeq !== this.startStatus.enableSeq) {
      this.detachedAtMs = Math.max(0, (Number(process.hrtime.bigint()) - this.t0Ns) / 1e6)
    }
  }

  finish(): SchedulerState {
    if (this.finished) return this.finished
    this.poll()
    clearInterval(this.timer)
    if (this.begin.kind !== 'sched_ext') return (this.finished = this.begin)
    const out: SchedulerState = { ...this.begin, attached: this.detachedAtMs === undefined }
    if (this.detachedAtMs !== undefined) {
      out.detachedAtMs = Math.round(this.detachedAtMs)
      // Warnings such as 'does not implement cgroup cpu.weight' are not why it left.
      const fresh = schedExtLogLines()
        .slice(this.logBaseline)
        .filter((l) => !/does not implement/.test(l))
      if (fresh.length) out.exitReason = fresh.join(' | ')
    }
    return (this.finished = out)
  }
}

export interface SchedulerHandle {
  name: string
  pid: number | undefined
  stop(): Promise<void>
}

/**
 * Start a sched_ext scheduler from the test file (its binary must be in the guest, e.g. through
 * `ktstr exec --include`), waiting until sched_ext reports it enabled. Only when none is attached.
 */
export async function startScheduler(binary: string, opts: { args?: string[]; opsName?: string; timeoutMs?: number } = {}): Promise<SchedulerHandle> {
  const now = schedExtStatus()
  if (now.state === undefined) throw new KtstrError(`this kernel has no sched_ext (${SCX} is missing); build one with \`ktstr kernel build\``)
  if (attached(now)) throw new KtstrError(`a sched_ext scheduler (${now.ops}) is already attached; only one runs at a time`)
  if (!fs.existsSync(binary)) throw new KtstrError(`scheduler binary ${binary} is not in the guest; add it with --include ${binary}`)
  const name = binary.split('/').at(-1)!
  const opsName = opts.opsName ?? (name.startsWith('scx_') ? name.slice(4) : undefined)
  const r = await initStart({ name, path: binary, args: opts.args ?? [], ...(opsName ? { opsName } : {}) }, opts.timeoutMs ?? 5000)
  if (!r.ok) throw new KtstrError(r.message)
  ownScheduler = { name, running: r.scheduler }
  const running = r.scheduler
  return {
    name,
    pid: running.pid,
    async stop() {
      await running.stop()
      if (ownScheduler?.running === running) ownScheduler = undefined
      // sched_ext finishes disabling asynchronously after the process is gone.
      for (let i = 0; i < 100 && attached(schedExtStatus()); i++) await new Promise((res) => setTimeout(res, 20))
    },
  }
}
