// Type-checked by test/monitor/api-wire.test.ts (never run): the monitor/bpf API and its matchers
// as a user writes them, importing the package by name; the matchers merge into Vitest's Assertion.

import { bpf, type CpuSample, cgroup, type MonitorWindow, monitor, run, type ScxState, work } from 'ktstr'
import { expect, test } from 'vitest'

test('monitor and bpf', async () => {
  const s = await monitor.sample()
  const cpu: CpuSample = s.cpus[0]!
  expect(cpu.nrRunning + (cpu.localDsq ?? 0)).toBeGreaterThanOrEqual(0)
  const scx: ScxState | undefined = s.scx
  expect(scx?.state === 'attached' ? scx.ops : 'eevdf').toBe('qmap')
  const c = monitor.counters(['nr_enqueued'], { everyMs: 100 })
  const r = await run({ duration: '1s', cgroups: [cgroup('a').workers(2, work.spin())] })
  const w: MonitorWindow = r.monitor
  expect(w.samples).toKeepLocalDsqBelow(8)
  expect(r).toHaveNoStalls()
  expect(r).toBeBalanced({ maxImbalance: 1 })
  const series = await c.stop()
  expect(series).toBeNonDecreasing()
  expect(series).toBeSteadyWithin({ bandPct: 30 })
  expect(series.values('nr_enqueued').length).toBeGreaterThan(0)
  const maps = await bpf.maps()
  expect(maps[0]!.valueSize).toBeGreaterThan(0)
  const contents = await bpf.map('cpu_ctx_stor').read()
  expect(contents.entries.length).toBeGreaterThan(0)
  await bpf.map('dispatch_idx_cnt').write(0, 1n)
  const g = await bpf.globals()
  expect(g.bss).toBeDefined()
  await bpf.globals.set('test_error_cnt', 1)
  // @ts-expect-error a task count, not a string
  expect(r).toKeepLocalDsqBelow('8')
  // @ts-expect-error maxImbalance is a number
  expect(r).toBeBalanced({ maxImbalance: 'one' })
})
