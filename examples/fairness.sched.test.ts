/** @ktstr topology=1n2l2c1t memory=1024 scheduler=scx_simple */
// The test API: workloads in cgroups, run inside the guest, judged by ktstr's matchers.

import { cgroup, run, topology, work } from 'ktstr'
import { expect, test } from 'vitest'

test('two equal cgroups share the CPUs fairly under scx_simple', async () => {
  const r = await run({
    duration: '2s',
    cgroups: [cgroup('a').workers(4, work.spin()), cgroup('b').workers(4, work.spin())],
  })
  expect(r).toHaveNoStarvation()
  expect(r.cgroup('a')).toBeFairWithin({ spreadPct: 15 })
  expect(r.cgroup('b')).toBeFairWithin({ spreadPct: 15 })
  expect(r).toKeepSchedulerAttached()
})

test('a cgroup confined to the first LLC stays there', async () => {
  const llc0 = topology().llc(0)
  const r = await run({
    duration: '1s',
    cgroups: [cgroup('pinned').cpuset(llc0).workers(2, work.mixed()), cgroup('free').workers(2, work.spin())],
  })
  expect(r.cgroup('pinned')).toStayInCpuset()
  expect(r).toHaveNoStarvation()
})
