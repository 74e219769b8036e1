/**
 * The host's stall watchdog, fed the monitor's samples. Time is the host's (the guest's jiffies
 * has no address we know). A stall is either
 *  - a sched_ext task on a CPU's runnable list whose (task, runnable_at) has not changed for longer
 *    than the threshold: it has not run since it became runnable (sched_ext resets runnable_at
 *    only when the task ran), or
 *  - an idle CPU (its current task is the idle task, pid 0) with runnable tasks whose rq clock has
 *    not advanced for longer than the threshold: nothing picks the queued work.
 * A busy CPU whose clock stands still is not a scheduler stall: it runs with interrupts off (no tick
 * updates the clock), as while the kernel prints an OOM report to a slow serial console; the
 * kernel's own lockup detectors own that case, and a panic it ends in must not be reported as a stall.
 */
import type { CpuSample, TaskRef } from './sample.js'

export interface Stall {
  /** The one line the run fails with. */
  readonly message: string
  readonly cpu: number
  /** The stalled task, for a runnable-list stall. */
  readonly pid?: number
  /** How long it was seen stalled, ms of host time. */
  readonly ms: number
}

interface Seen {
  runnableAt: number
  since: number
  cpu: number
  round: number
}

export class StallWatch {
  private readonly tasks = new Map<number, Seen>()
  private clocks: { clockNs: number; since: number }[] = []
  private round = 0

  constructor(readonly thresholdMs: number) {}

  /** Feed the samples of every CPU taken at host time `t` (ms); the first stall past the threshold, if any. */
  check(t: number, cpus: readonly CpuSample[]): Stall | undefined {
    const round = ++this.round
    let worst: { seen: Seen; sample: CpuSample; task: TaskRef } | undefined
    for (const s of cpus) {
      for (const r of s.runnable) {
        let seen = this.tasks.get(r.addr)
        if (!seen || seen.runnableAt !== r.runnableAt) {
          seen = { runnableAt: r.runnableAt, since: t, cpu: s.cpu, round }
          this.tasks.set(r.addr, seen)
        }
        seen.round = round
        seen.cpu = s.cpu
        if (t - seen.since > this.thresholdMs && (!worst || seen.since < worst.seen.since)) worst = { seen, sample: s, task: r }
      }
    }
    for (const [addr, seen] of this.tasks) {
      // A CPU whose sample is partial may not have listed its tasks: keep them until it reads whole.
      if (seen.round !== round && !cpus[seen.cpu]?.partial) this.tasks.delete(addr)
    }
    if (worst) {
      const ms = t - worst.seen.since
      const { pid, comm } = worst.task
      return { message: `stall: pid ${pid} (${comm}) runnable ${secs(ms)} on CPU ${worst.sample.cpu} without running; ${current(worst.sample)}`, cpu: worst.sample.cpu, pid, ms }
    }
    return this.clockStall(t, cpus)
  }

  private clockStall(t: number, cpus: readonly CpuSample[]): Stall | undefined {
    for (const s of cpus) {
      const c = this.clocks[s.cpu]
      if (!c || s.nrRunning === 0 || s.partial || s.curr?.pid !== 0 || c.clockNs !== s.clockNs) {
        this.clocks[s.cpu] = { clockNs: s.clockNs, since: t }
        continue
      }
      const ms = t - c.since
      if (ms > this.thresholdMs) {
        const what = s.nrRunning === 1 ? '1 runnable task' : `${s.nrRunning} runnable tasks`
        return { message: `stall: CPU ${s.cpu} idle, its rq clock stood still ${secs(ms)} with ${what}; ${current(s)}`, cpu: s.cpu, ms }
      }
    }
    return undefined
  }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`

function current(s: CpuSample): string {
  return s.curr ? `CPU ${s.cpu} current: pid ${s.curr.pid} ${s.curr.comm}` : `CPU ${s.cpu} current: unknown`
}
