/** @ktstr topology=2n2l2c2t memory=1024 */
// No scheduler: the kernel's own EEVDF. Reads the topology back from sysfs.
import fs from 'node:fs'
import { expect, test } from 'vitest'

const read = (p: string) => fs.readFileSync(p, 'utf8').trim()
const cpus = [0, 1, 2, 3, 4, 5, 6, 7]

test('EEVDF is in charge (no sched_ext scheduler attached)', () => {
  expect(read('/sys/kernel/sched_ext/state')).toBe('disabled')
})

test('2 NUMA nodes of 4 CPUs', () => {
  expect(read('/sys/devices/system/node/node0/cpulist')).toBe('0-3')
  expect(read('/sys/devices/system/node/node1/cpulist')).toBe('4-7')
})

test.each(cpus)('cpu%i has one SMT sibling and shares its LLC with 3 others', (cpu) => {
  const base = `/sys/devices/system/cpu/cpu${cpu}`
  const pair = cpu - (cpu % 2)
  expect(read(`${base}/topology/thread_siblings_list`)).toBe(`${pair}-${pair + 1}`)
  expect(read(`${base}/cache/index3/shared_cpu_list`)).toBe(cpu < 4 ? '0-3' : '4-7')
})
