/** @ktstr topology=1n1l2c1t memory=1024 scheduler=scx_qmap */
// Seeing inside the scheduler: the host samples every CPU of this guest (10 Hz by default) and reads
// scx_qmap's BPF maps and globals from guest memory. The test only asks.

import { bpf, cgroup, monitor, run, work } from 'ktstr'
import { expect, test } from 'vitest'

test('the host samples every CPU while a run goes on', async () => {
  const now = await monitor.sample()
  expect(now.cpus.map((c) => c.cpu)).toEqual([0, 1])

  const r = await run({ duration: '2s', cgroups: [cgroup('busy').workers(4, work.spin())] })
  expect(r.monitor.samples.length).toBeGreaterThan(5)
  // Four spinners on two CPUs: both CPUs busy, none starved, no stall the host could see.
  expect(r).toHaveNoStalls()
  expect(r).toBeBalanced({ maxImbalance: 2 })
  expect(r).toKeepLocalDsqBelow(64)
})

test("scx_qmap's maps and globals, decoded through BTF", async () => {
  const maps = await bpf.maps()
  expect(maps.map((m) => m.name)).toContain('cpu_ctx_stor')
  const cpuCtx = await bpf.map('cpu_ctx_stor').read() // PERCPU_ARRAY: one value per CPU
  expect(cpuCtx.map.type).toBe('percpu_array')

  const g = await bpf.globals() // by section; integers as numbers (bigints past 2^53)
  expect(g.bss!.nr_enqueued).toBeGreaterThan(0)
  expect(g.rodata!.slice_ns).toBeGreaterThan(0)
})

test("scx_qmap's enqueue counter only grows while tasks run", async () => {
  const counters = monitor.counters(['nr_enqueued', 'nr_dispatched'], { everyMs: 250 })
  await run({ duration: '2s', cgroups: [cgroup('mixed').workers(4, work.mixed())] })
  const series = await counters.stop()
  expect(series).toBeNonDecreasing()
  const enq = series.values('nr_enqueued')
  expect(enq.at(-1)!).toBeGreaterThan(enq[0]!)
})
