/** `ktstr exec` end to end: real guests under QEMU. */
import { describe, expect, it } from 'vitest'
import { guestSkipReason, runCli, strayQemus } from '../helpers/guest.js'
import { PANIC_SCRIPT } from '../helpers/panic.js'

const BOOT = 120_000

describe.skipIf(guestSkipReason)('ktstr exec (real guests)', () => {
  it('boots the requested topology: 1n2l2c1t has 4 CPUs in 2 LLCs', { timeout: BOOT }, async () => {
    const r = await runCli([
      'exec',
      '--topology',
      '1n2l2c1t',
      '--timing',
      '--',
      'sh',
      '-c',
      'cat /sys/devices/system/cpu/online; cat /sys/devices/system/cpu/cpu*/cache/index3/shared_cpu_list | sort -u | tr "\\n" " "',
    ])
    // A cold boot times the kernel; a warm start (the default) the restore of the snapshot.
    expect(r.stderr).toMatch(/ktstr timing:[\s\S]*(kernel|restore) +\d+\.\d+ s[\s\S]*command +\d+\.\d+ s/)
    expect(r.stdout).toBe('0-3\n0-1 2-3 ')
    expect(r.code).toBe(0)
  })

  it('2n2l2c2t: 8 CPUs, 2 NUMA nodes, SMT pairs, 2 LLC groups', { timeout: BOOT }, async () => {
    const script = [
      'cat /sys/devices/system/cpu/online',
      'cat /sys/devices/system/node/node0/cpulist /sys/devices/system/node/node1/cpulist',
      'cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list | sort -u | tr "\\n" " "; echo',
      'cat /sys/devices/system/cpu/cpu*/cache/index3/shared_cpu_list | sort -u | tr "\\n" " "; echo',
    ].join('; ')
    const r = await runCli(['exec', '--topology', '2n2l2c2t', '--', 'sh', '-c', script])
    expect(r.stdout.split('\n')).toEqual(['0-7', '0-3', '4-7', '0-1 2-3 4-5 6-7 ', '0-3 4-7 ', ''])
    expect(r.code).toBe(0)
  })

  it('loads scx_simple and sched_ext reports it attached', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--scheduler', 'scx_simple', '--', 'sh', '-c', 'cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops'])
    expect(r.stdout).toBe('enabled\nsimple\n')
    expect(r.code).toBe(0)
  })

  it('a scheduler that exits at once fails with a message naming it', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--scheduler', '/bin/false', '--', 'true'])
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/^ktstr: scheduler false exited before attaching \(exit code 1\)$/m)
    expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
  })

  it('a guest past its timeout is killed: one clear line, no VM left behind', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--timeout', '2', '--', 'sleep', '60'])
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/^ktstr: (guest failed to boot: )?guest did not finish within 2s \(raise it with --timeout/m)
    expect(strayQemus(r)).toEqual([])
  })

  it("propagates the command's exit code and its stdin", { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--', 'sh', '-c', 'read line; echo "got $line" >&2; exit 7'], { input: 'ping\n' })
    expect(r.stderr).toContain('got ping')
    expect(r.code).toBe(7)
    expect(strayQemus(r)).toEqual([])
  })

  it('a guest kernel panic is reported as one, with the console', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--memory', '512', '--', 'sh', '-c', PANIC_SCRIPT])
    expect(r.stderr).toMatch(/^ktstr: guest kernel panic: Out of memory: system-wide panic_on_oom is enabled$/m)
    expect(r.stderr).toContain('--- last kernel console lines ---')
    expect(r.code).toBe(125)
    expect(strayQemus(r)).toEqual([])
  })

  it('a guest that resets itself ends the run with one line, its output kept', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--', 'sh', '-c', 'echo before; sleep 1; reboot -f'])
    expect(r.stdout).toBe('before\n')
    expect(r.stderr).toMatch(/^ktstr: the guest kernel restarted the machine \(a reboot in the guest\) before the guest reported a result$/m)
    expect(r.code).toBe(125)
  })
})
