// Per-CPU samples read from synthetic guest RAM (counts, clock, current task, the runnable list
// oldest first; torn and endless lists; RAM gone), the host's stall watchdog over host time, and the
// Monitor's ring of samples. Samples are taken by calling sample() with given times: no timers.
import { describe, expect, it } from 'vitest'
import { resolveLayout } from '../../src/monitor/layout.js'
import { Monitor } from '../../src/monitor/monitor.js'
import { GuestKernelView } from '../../src/monitor/open-view.js'
import { percpuScanOffsets, scanPercpuAreas } from '../../src/monitor/percpu-scan.js'
import { RUNNABLE_KEEP, sampleCpu } from '../../src/monitor/sample.js'
import { StallWatch } from '../../src/monitor/stall.js'
import { monitorTable } from '../../src/monitor/table.js'
import { fakeGuest, kernelBtf, RQ, TASK } from './fake-kernel.js'

const btf = kernelBtf()
const r = resolveLayout(btf)
if (!r.ok) throw new Error(r.reason)
const layout = r.layout

function guest(cpus = 2) {
  const g = fakeGuest({ cpus })
  const areas = scanPercpuAreas(g.mem, percpuScanOffsets(btf), cpus)!
  const view = new GuestKernelView(g.mem, () => btf, areas, { currentTask: layout.currentTask, activeMm: layout.task.activeMm, mmPgd: layout.mmPgd })
  return { ...g, view }
}

describe('one CPU sample', () => {
  it('reads the run queue, the current task and the runnable list oldest first', () => {
    const g = guest()
    const idle = g.task({ pid: 0, comm: 'swapper/1', policy: 0 })
    const a = g.task({ pid: 231, comm: 'spin', runnableAt: 4294967000 + 5 })
    const b = g.task({ pid: 232, comm: 'spin2', runnableAt: 4294967000 + 9 })
    g.setRq(1, { nr: 3, scxNr: 2, dsq: 1, clock: 2 ** 40 + 7, curr: idle, runnable: [a, b] })
    expect(sampleCpu(g.view, layout, 1)).toEqual({
      cpu: 1,
      nrRunning: 3,
      scxNrRunning: 2,
      localDsq: 1,
      clockNs: 2 ** 40 + 7,
      curr: { pid: 0, comm: 'swapper/1', policy: 0 },
      runnable: [
        { pid: 231, comm: 'spin', policy: 7, runnableAt: 4294967005, addr: a },
        { pid: 232, comm: 'spin2', policy: 7, runnableAt: 4294967009, addr: b },
      ],
    })
  })

  it('gives a partial sample for a torn list pointer, bounds a list that never returns to its head, and survives RAM going away', () => {
    const g = guest()
    const a = g.task({ pid: 5, comm: 'a' })
    g.setRq(0, { nr: 1, clock: 1, curr: a, runnable: [a] })
    g.mem.writeU64(a + TASK.runnableNode, 0x1234n) // a's next: not a kernel pointer
    const torn = sampleCpu(g.view, layout, 0)
    expect(torn.runnable.map((t) => t.pid)).toEqual([5])
    expect(torn.partial).toBe('the runnable list changed under the read (torn pointer)')

    g.mem.writeU64(a + TASK.runnableNode, g.va(a + TASK.runnableNode)) // a points at itself: a cycle without the head
    expect(sampleCpu(g.view, layout, 0).runnable).toHaveLength(RUNNABLE_KEEP)

    g.mem.writeU64(g.rqOf(0) + RQ.curr, 0n)
    expect(sampleCpu(g.view, layout, 0).partial).toBe('rq->curr is not a kernel pointer')

    g.mem.release()
    expect(sampleCpu(g.view, layout, 0)).toMatchObject({ cpu: 0, partial: 'the VM is gone', runnable: [] })
  })
})

describe('the stall watchdog', () => {
  it('fails on a task whose runnable_at stays put past the threshold, with the one line naming it and the CPU current', () => {
    const g = guest()
    const idle = g.task({ pid: 0, comm: 'swapper/1', policy: 0 })
    const spin = g.task({ pid: 231, comm: 'spin', runnableAt: 1000 })
    g.setRq(1, { nr: 1, scxNr: 1, clock: 10, curr: idle, runnable: [spin] })
    const w = new StallWatch(2000)
    const at = (t: number, clock: number) => {
      g.mem.writeU64(g.rqOf(1) + RQ.clock, BigInt(clock))
      return w.check(t, [sampleCpu(g.view, layout, 0), sampleCpu(g.view, layout, 1)])
    }
    expect(at(0, 10)).toBeUndefined()
    expect(at(1500, 20)).toBeUndefined()
    expect(at(2000, 30)).toBeUndefined() // exactly the threshold: not past it
    expect(at(2400, 40)).toEqual({ message: 'stall: pid 231 (spin) runnable 2.4 s on CPU 1 without running; CPU 1 current: pid 0 swapper/1', cpu: 1, pid: 231, ms: 2400 })
  })

  it('starts over when the task ran (runnable_at moved) or left the list', () => {
    const g = guest(1)
    const t1 = g.task({ pid: 7, comm: 'w', runnableAt: 1 })
    g.setRq(0, { nr: 1, scxNr: 1, clock: 1, curr: t1, runnable: [t1] })
    const w = new StallWatch(1000)
    const check = (t: number, clock: number) => {
      g.mem.writeU64(g.rqOf(0) + RQ.clock, BigInt(clock))
      return w.check(t, [sampleCpu(g.view, layout, 0)])
    }
    expect(check(0, 1)).toBeUndefined()
    g.mem.writeU64(t1 + TASK.runnableAt, 2n) // it ran and queued again
    expect(check(900, 2)).toBeUndefined()
    expect(check(1800, 3)).toBeUndefined()
    g.setRq(0, { nr: 1, scxNr: 0, clock: 4, curr: t1, runnable: [] })
    expect(check(2000, 4)).toBeUndefined()
    g.setRq(0, { nr: 1, scxNr: 1, clock: 5, curr: t1, runnable: [t1] }) // back with the same runnable_at: a new wait
    expect(check(2100, 5)).toBeUndefined()
    expect(check(3200, 6)?.message).toBe('stall: pid 7 (w) runnable 1.1 s on CPU 0 without running; CPU 0 current: pid 7 w')
  })

  it('fails on an idle CPU whose rq clock stands still with runnable tasks; not on one without, nor on a busy one (interrupts off)', () => {
    const g = guest(3)
    const hog = g.task({ pid: 9, comm: 'hog', policy: 0 })
    const idle = g.task({ pid: 0, comm: 'swapper/1', policy: 0 })
    g.setRq(0, { nr: 0, clock: 50, curr: idle })
    g.setRq(1, { nr: 2, clock: 77, curr: idle })
    g.setRq(2, { nr: 1, clock: 90, curr: hog }) // e.g. printing an OOM report with interrupts off
    const w = new StallWatch(2000)
    const cpus = () => [0, 1, 2].map((c) => sampleCpu(g.view, layout, c))
    expect(w.check(0, cpus())).toBeUndefined()
    expect(w.check(1000, cpus())).toBeUndefined()
    expect(w.check(2500, cpus())).toEqual({ message: 'stall: CPU 1 idle, its rq clock stood still 2.5 s with 2 runnable tasks; CPU 1 current: pid 0 swapper/1', cpu: 1, ms: 2500 })
    g.setRq(1, { nr: 2, clock: 78, curr: idle }) // the clock moved: a new wait
    const w2 = new StallWatch(2000)
    expect(w2.check(0, cpus())).toBeUndefined()
    g.setRq(1, { nr: 0, clock: 78, curr: idle })
    expect(w2.check(5000, cpus())).toBeUndefined() // CPU 2 stood still 5 s, busy: no stall
  })
})

describe('the Monitor', () => {
  it('keeps a bounded ring of samples, answers last() and samplesBetween(), and reports the first stall once', () => {
    const g = guest()
    const spin = g.task({ pid: 40, comm: 'spin', runnableAt: 3 })
    g.setRq(0, { nr: 1, scxNr: 1, clock: 1, curr: spin, runnable: [spin] })
    const stalls: string[] = []
    const m = new Monitor(g.view, layout, { ringSize: 3, stallMs: 0, onStall: (s) => stalls.push(s.message) })
    expect(m.last()).toBeUndefined()
    expect(m.notes).toEqual(['no sched_ext event counters: this kernel has none (they came in Linux 6.15)'])
    const taken = [m.sample(), m.sample(), m.sample(), m.sample()]
    expect(m.samplesBetween()).toEqual(taken.slice(1))
    expect(m.last()).toBe(taken[3])
    expect(m.samplesBetween(taken[2]!.t, taken[3]!.t)).toEqual(taken.slice(2))
    expect(taken[0]!.cpus.map((c) => c.nrRunning)).toEqual([1, 0])
    expect(stalls).toHaveLength(1)
    expect(stalls[0]).toMatch(/^stall: pid 40 \(spin\) runnable 0\.\d s on CPU 0 without running; CPU 0 current: pid 40 spin$/)
    expect(m.stall?.pid).toBe(40)
  })

  it('starts and stops its timer, and will not start on a gone VM', () => {
    const g = guest(1)
    const m = new Monitor(g.view, layout).start()
    expect(m.running).toBe(true)
    m.stop()
    expect(m.running).toBe(false)
    g.mem.release()
    expect(new Monitor(g.view, layout).start().running).toBe(false)
    expect(() => new Monitor(g.view, layout, { hz: 0 })).toThrow('monitor rate 0 Hz')
  })
})

describe('ktstr exec --monitor table', () => {
  it('prints per CPU: whole samples, max nr_running, max local DSQ and the last current task; or why the monitor is off', () => {
    const g = guest()
    const a = g.task({ pid: 12, comm: 'worker', policy: 0 })
    g.setRq(0, { nr: 3, dsq: 2, clock: 1, curr: a })
    g.setRq(1, { nr: 1, clock: 1, curr: a })
    const m = new Monitor(g.view, layout)
    m.sample()
    g.setRq(0, { nr: 1, dsq: 0, clock: 2, curr: a })
    g.mem.writeU64(g.rqOf(1) + RQ.curr, 0n) // CPU 1's second sample is partial
    m.sample()
    const [head, note, ...rows] = monitorTable({ on: true, monitor: m, scanMs: 1 }).trimEnd().split('\n')
    expect(head).toMatch(/^monitor: 2 samples at 10 Hz over 0\.\d s$/)
    expect(note).toBe('monitor: no sched_ext event counters: this kernel has none (they came in Linux 6.15)')
    expect(rows).toEqual([
      'CPU  samples  max nr_running  max local DSQ  last current',
      '  0        2               3              2  pid 12 worker',
      '  1        1               1              0  pid 12 worker',
    ])
    expect(monitorTable({ on: false, reason: 'monitor-hz=off' })).toBe('monitor: off (monitor-hz=off)\n')
  })
})
