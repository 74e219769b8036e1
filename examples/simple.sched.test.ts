/** @ktstr topology=1n1l2c1t scheduler=scx_simple */
// Runs inside a freshly booted guest with scx_simple attached.
import fs from 'node:fs'
import { describe, expect, it } from 'vitest'

const read = (p: string) => fs.readFileSync(p, 'utf8').trim()

describe('scx_simple on two CPUs', () => {
  it('is the attached sched_ext scheduler', () => {
    expect(read('/sys/kernel/sched_ext/state')).toBe('enabled')
    expect(read('/sys/kernel/sched_ext/root/ops')).toBe('simple')
  })

  it('sees the topology the docblock asked for', () => {
    expect(read('/sys/devices/system/cpu/online')).toBe('0-1')
  })

  it('schedules work on both CPUs', async () => {
    const { execFileSync } = await import('node:child_process')
    // Two busy shells; sched_ext must run both (each reports the CPU it last ran on).
    const out = execFileSync('sh', ['-c', 'for i in 1 2; do (i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; cat /proc/self/stat | cut -d" " -f39) & done; wait'])
    expect(out.toString().trim().split('\n')).toHaveLength(2)
  })
})
