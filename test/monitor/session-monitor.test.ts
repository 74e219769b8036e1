// The session's monitor (src/vm/session-monitor.ts) when the guest is done before the monitor could
// start: off with the reason, quietly (a short command ends while the per-CPU scan still runs; a
// warning there was noise on every quick cold run).
import { afterEach, describe, expect, it, vi } from 'vitest'
import { resolveLayout } from '../../src/monitor/layout.js'
import { percpuScanOffsets } from '../../src/monitor/percpu-scan.js'
import { sessionMonitor } from '../../src/vm/session-monitor.js'
import type { VmProcess } from '../../src/vm/vm-process.js'
import { fakeGuest, kernelBtf } from './fake-kernel.js'

const btf = kernelBtf()
const r = resolveLayout(btf)
if (!r.ok) throw new Error(r.reason)
const model = { ok: true as const, btf: () => btf, layout: r.layout, scan: percpuScanOffsets(btf) }

afterEach(() => {
  vi.restoreAllMocks()
})

describe('the session monitor', () => {
  it('a guest gone while the per-CPU scan runs: off with the reason, no warning', async () => {
    const said: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (said.push(String(chunk)), true))
    // No per-CPU areas in its RAM yet: the scan keeps looking (every 200 ms, up to 3 s).
    const g = fakeGuest({ cpus: 0 })
    const vm = { memory: g.mem } as unknown as VmProcess
    const sm = sessionMonitor(vm, { kernel: {} as never, model, cpus: 2, hz: 10, stallMs: 'off' }, () => {})
    sm.start()
    await new Promise((res) => setTimeout(res, 50))
    // The guest powered off: the session stops the monitor, and the VM's RAM goes.
    sm.stop()
    g.mem.release()
    const s = await sm.status
    expect(s).toEqual({ on: false, reason: 'the guest exited before its per-CPU areas were found' })
    expect(said.filter((l) => l.startsWith('ktstr: '))).toEqual([])
  })
})
