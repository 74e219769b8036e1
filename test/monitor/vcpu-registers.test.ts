// vCPU registers in failure dumps (issue 10 item 7): the kvm VMM's vcpuRegisters() as the session's
// Monitor reads it (one read at a time, at most once a second, kept with its host time), a vCPU
// thread that does not answer, and what a dump says for the qemu backend and before any answer.
// The vCPU threads are stand-ins (no /dev/kvm here); the Monitor reads a fake guest's RAM.
import { describe, expect, it } from 'vitest'
import type { MonitorStatus } from '../../src/monitor/attach.js'
import { collectDump, dumpSummary } from '../../src/monitor/dump.js'
import { resolveLayout } from '../../src/monitor/layout.js'
import { Monitor } from '../../src/monitor/monitor.js'
import { GuestKernelView } from '../../src/monitor/open-view.js'
import { percpuScanOffsets, scanPercpuAreas } from '../../src/monitor/percpu-scan.js'
import type { VcpuReport } from '../../src/vm/kvm/vcpu/protocol.js'
import { readVcpuRegisters } from '../../src/vm/kvm/vcpu/registers.js'
import { sessionMonitor } from '../../src/vm/session-monitor.js'
import type { VcpuRegisters, VmProcess } from '../../src/vm/vm-process.js'
import { fakeGuest, kernelBtf } from './fake-kernel.js'

const btf = kernelBtf()
const r = resolveLayout(btf)
if (!r.ok) throw new Error(r.reason)
const layout = r.layout
const stats = { counts: {}, asks: 0, askMs: 0, runMs: 0, elapsedMs: 0 }
const REPORT: VcpuReport = { stats, rip: 'ffffffff81a0c3d2', rsp: 'ffffc90000083e88', rflags: '246', cr3: '2a3c000', cr4: '3506f0', gprs: { rax: '0', r15: '1' } }
/** A vCPU thread stand-in answering report() as thread.ts does: the report, or undefined past the wait. */
const vcpu = (report: VcpuReport | undefined) => ({ report: async () => report })
const tick = () => new Promise((res) => setImmediate(res))

function guest(cpus = 2) {
  const g = fakeGuest({ cpus })
  const areas = scanPercpuAreas(g.mem, percpuScanOffsets(btf), cpus)!
  const view = new GuestKernelView(g.mem, () => btf, areas, { currentTask: layout.currentTask, activeMm: layout.task.activeMm, mmPgd: layout.mmPgd })
  return { ...g, view }
}

describe('the kvm VMM: vcpuRegisters()', () => {
  it('gives each vCPU its registers as hex, marks one that did not answer and one KVM gave none for', async () => {
    const got = await readVcpuRegisters([vcpu(REPORT), vcpu(undefined), vcpu({ stats })])
    expect(got).toEqual([
      {
        cpu: 0,
        regs: { rip: '0xffffffff81a0c3d2', rsp: '0xffffc90000083e88', rflags: '0x246', cr3: '0x2a3c000', cr4: '0x3506f0', rax: '0x0', r15: '0x1' },
      },
      { cpu: 1, noAnswer: 'the vCPU thread did not answer within 200 ms' },
      { cpu: 2, noAnswer: 'KVM did not give the registers' },
    ])
  })
})

describe('the Monitor and the dump', () => {
  it('reads the registers once while a read waits and within a second, and a dump holds them with their age', async () => {
    const g = guest()
    const vcpus = await readVcpuRegisters([vcpu(REPORT), vcpu(undefined)])
    let reads = 0
    const m = new Monitor(g.view, layout, { registers: async () => (reads++, vcpus) })
    expect(m.readsRegisters).toBe(true)
    m.sample()
    m.sample() // the first read has not answered yet: no second one
    await tick()
    m.sample() // answered, but less than a second ago
    expect(reads).toBe(1)
    expect(m.registers?.vcpus).toBe(vcpus)
    g.mem.release()
    const d = collectDump({ cause: 'timeout', monitor: { on: true, monitor: m, scanMs: 1 }, backend: 'kvm' })
    expect(d.vcpus).toBe(vcpus)
    expect(d.vcpusReadBeforeMs).toBeGreaterThanOrEqual(0)
    expect(dumpSummary(d, '/tmp/d.json').at(-1)).toMatch(/^vCPU 0: rip 0xffffffff81a0c3d2 rsp 0xffffc90000083e88; vCPU 1: no answer \(read \d+\.\d s before the dump\)$/)
  })

  it('says why there are none: the qemu backend, no answer yet, the monitor off on kvm', () => {
    const on = (mon: Monitor): MonitorStatus => ({ on: true, monitor: mon, scanMs: 1 })
    const g = guest()
    const qemu = new Monitor(g.view, layout)
    expect(qemu.readsRegisters).toBe(false)
    expect(collectDump({ cause: 'x', monitor: on(qemu), backend: 'qemu' }).vcpus).toEqual({
      none: 'the host reads no vCPU registers from the qemu backend',
    })
    const waiting = new Monitor(g.view, layout, { registers: () => new Promise<VcpuRegisters[]>(() => {}) })
    waiting.sample()
    g.mem.release()
    const d = collectDump({ cause: 'x', monitor: on(waiting), backend: 'kvm' })
    expect(dumpSummary(d, '/tmp/d.json').at(-1)).toBe('vCPU registers: none (no read of them had answered yet)')
    expect(collectDump({ cause: 'x', monitor: { on: false, reason: 'monitor-hz=off' }, backend: 'kvm' }).vcpus).toEqual({
      none: 'the monitor, which reads them, is off',
    })
  })

  it("the session's Monitor reads them from the VmProcess that has vcpuRegisters", async () => {
    const g = guest()
    const vcpus: VcpuRegisters[] = [
      { cpu: 0, regs: { rip: '0xffffffff81000000' } },
      { cpu: 1, regs: { rip: '0xffffffff81000010' } },
    ]
    const vm = { memory: g.mem, vcpuRegisters: async () => vcpus } as unknown as VmProcess
    const model = { ok: true as const, btf: () => btf, layout, scan: percpuScanOffsets(btf) }
    const sm = sessionMonitor(vm, { kernel: {} as never, model, cpus: 2, hz: 10, stallMs: 'off' }, () => {})
    sm.start()
    const s = await sm.status
    sm.stop()
    if (!s.on) throw new Error(s.reason)
    s.monitor.sample()
    await tick()
    expect(s.monitor.registers?.vcpus).toBe(vcpus)
  })
})
