// The session's monitor over a fake VM whose "RAM" is a synthetic guest kernel: started at the
// guest's hello, its stall watchdog ends the run as a 'stall' outcome with its one line and kills
// the VM without the guest's help; a kernel the monitor does not fit, or monitor-hz=off, leaves the
// monitor off with the reason and the run going on.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeFrame, encodeMessage, FrameType } from '../../runtime/protocol/index.js'
import type { KernelModel } from '../../src/monitor/attach.js'
import { resolveLayout } from '../../src/monitor/layout.js'
import { percpuScanOffsets } from '../../src/monitor/percpu-scan.js'
import { describeOutcome } from '../../src/vm/outcome.js'
import type { MonitorPlan } from '../../src/vm/session-monitor.js'
import { startSession } from '../../src/vm/session-runner.js'
import { fakeVm } from '../helpers/fake-vm.js'
import { socketPair } from '../helpers/socket-pair.js'
import { fakeGuest, kernelBtf } from './fake-kernel.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

const btf = kernelBtf()
const layout = resolveLayout(btf)
const model: KernelModel = layout.ok ? { ok: true, btf: () => btf, layout: layout.layout, scan: percpuScanOffsets(btf) } : { ok: false, reason: layout.reason }
const hello = encodeFrame(FrameType.Control, encodeMessage({ kind: 'hello', uptimeMs: 5, nodeVersion: process.version }))

/** A session over a fake VM with two CPUs: CPU 1 idles while pid 231 waits on its runnable list. */
async function stalledGuest(plan: Partial<MonitorPlan>) {
  const g = fakeGuest({ cpus: 2 })
  const idle = g.task({ pid: 0, comm: 'swapper/1', policy: 0 })
  const spin = g.task({ pid: 231, comm: 'spin', runnableAt: 100 })
  g.setRq(1, { nr: 1, scxNr: 1, clock: 1, curr: idle, runnable: [spin] })
  const [host, guest, closePair] = await socketPair()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-monitor-session-'))
  cleanups.push(closePair, () => fs.rmSync(dir, { recursive: true, force: true }))
  const vm = Object.assign(fakeVm(host), { memory: g.mem })
  const monitor: MonitorPlan = { kernel: { bzImage: '/nonexistent', dir }, model, cpus: 2, hz: 50, stallMs: 100, ...plan }
  const started = startSession(vm, { t0: performance.now(), imageMs: 0, timeoutS: 600, tmpDir: dir, monitor })
  guest.write(hello)
  return { vm, session: await started, guest }
}

describe("the session's monitor", () => {
  it('ends a run whose sched_ext task stalls with the stall line, killing the VM without the guest', async () => {
    const { vm, session } = await stalledGuest({})
    const status = await session.monitor
    expect(status.on).toBe(true)
    const outcome = await session.done
    expect(outcome.kind).toBe('stall')
    expect(describeOutcome(outcome)).toMatch(/^stall: pid 231 \(spin\) runnable 0\.\d s on CPU 1 without running; CPU 1 current: pid 0 swapper\/1$/)
    expect(vm.kills).toBe(1)
    expect(status.on && status.monitor.running).toBe(false)
  })

  it('stall-ms off: samples, but the stall does not end the run', async () => {
    const { session, guest } = await stalledGuest({ stallMs: 'off' })
    const status = await session.monitor
    if (!status.on) throw new Error(status.reason)
    while (status.monitor.samplesBetween().length < 10) await new Promise((r) => setTimeout(r, 20))
    expect(status.monitor.stall).toBeUndefined()
    expect(status.monitor.last()?.cpus[1]?.runnable.map((t) => t.pid)).toEqual([231])
    guest.end()
    expect((await session.done).kind).toBe('vm-died')
  })

  it('is off with the one reason when the kernel does not fit or the rate is off, and the run goes on', async () => {
    const misfit = await stalledGuest({ model: { ok: false, reason: "the guest kernel's BTF does not fit the monitor: struct rq has no scx.local_dsq.nr" } })
    expect(await misfit.session.monitor).toEqual({ on: false, reason: "the guest kernel's BTF does not fit the monitor: struct rq has no scx.local_dsq.nr" })
    const off = await stalledGuest({ hz: 'off' })
    expect(await off.session.monitor).toEqual({ on: false, reason: 'monitor-hz=off' })
    for (const { session, guest } of [misfit, off]) {
      guest.end()
      expect((await session.done).kind).toBe('vm-died')
    }
  })
})
