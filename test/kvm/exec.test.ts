/**
 * `ktstr exec --backend kvm` end to end: our own VMM boots the guest kernel to a command's output.
 * Needs a usable /dev/kvm; `npm run test:kvm` provides one nested inside a QEMU-TCG guest where
 * the host has none.
 */
import { describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { PANIC_SCRIPT } from '../helpers/panic.js'
import { testKernel } from '../helpers/repo.js'
import { BOOT, exec, skipReason } from './helpers.js'

describe.skipIf(skipReason)('ktstr exec --backend kvm (our VMM)', () => {
  it("boots to the command's output", { timeout: BOOT }, async () => {
    const r = await exec(['--timing', '--cold'], ['echo', 'hello from the kvm backend'])
    expect(r.stdout).toBe('hello from the kvm backend\n')
    expect(r.stderr).toMatch(/ktstr timing:[\s\S]*kernel +\d+\.\d+ s[\s\S]*command +\d+\.\d+ s/)
    expect(r.code).toBe(0)
  })

  it('carries stdin through the console, flow-controlled: a late reader gets every byte', { timeout: BOOT }, async () => {
    // More than the stdin window (1 MiB) and the console's queue (256 KiB) together.
    const input = 'x'.repeat(3 * 1024 * 1024)
    const r = await runCli(['exec', '--backend', 'kvm', '--timeout', '150', '--', 'sh', '-c', 'sleep 3; wc -c'], {
      env: { KTSTR_KERNEL: testKernel, NO_COLOR: '1' },
      input,
      timeoutMs: BOOT,
    })
    expect(r.stdout.trim()).toBe(String(input.length))
    expect(r.code).toBe(0)
  })

  it("propagates the command's exit code", { timeout: BOOT }, async () => {
    const r = await exec([], ['sh', '-c', 'echo out; echo err >&2; exit 7'])
    expect(r.stdout).toBe('out\n')
    expect(r.stderr).toContain('err\n')
    expect(r.code).toBe(7)
  })

  const topologyScript = [
    'cat /sys/devices/system/cpu/online',
    'ls -d /sys/devices/system/node/node* | wc -l',
    'cat /sys/devices/system/node/node*/cpulist | tr "\\n" " "; echo',
    'cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list | sort -u | tr "\\n" " "; echo',
    'cat /sys/devices/system/cpu/cpu*/cache/index3/shared_cpu_list | sort -u | tr "\\n" " "; echo',
  ].join('; ')

  it('1n2l2c1t: 4 CPUs, one node, no SMT siblings, 2 LLC groups', { timeout: BOOT }, async () => {
    const r = await exec(['--topology', '1n2l2c1t'], ['sh', '-c', topologyScript])
    expect(r.stdout.split('\n')).toEqual(['0-3', '1', '0-3 ', '0 1 2 3 ', '0-1 2-3 ', ''])
    expect(r.code).toBe(0)
  })

  // 4 vCPUs with every topology level (nodes, LLCs, SMT). With 8 (2n2l2c2t) nested, 2 of 4 runs
  // once lost the guest's output and exit report after its hello. Found since: the init's flush
  // before power-off did not wait for write(2) (runtime/init/channel.ts), and the host's monitor
  // scanned guest RAM inside the hello's queue handler with a vCPU waiting. With both mended, 4 of 4
  // runs at 8 vCPUs and 4 of 4 here passed; so did 4 of 4 at 8 without them (the fault is rare).
  it('2n2l1c2t: 4 CPUs, 2 NUMA nodes, SMT pairs, 2 LLC groups', { timeout: BOOT }, async () => {
    const r = await exec(['--topology', '2n2l1c2t'], ['sh', '-c', topologyScript])
    expect(r.stdout.split('\n')).toEqual(['0-3', '2', '0-1 2-3 ', '0-1 2-3 ', '0-1 2-3 ', ''])
    expect(r.code).toBe(0)
  })

  it('attaches scx_simple', { timeout: BOOT }, async () => {
    const r = await exec(['--scheduler', 'scx_simple'], ['sh', '-c', 'cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops'])
    expect(r.stdout).toBe('enabled\nsimple\n')
    expect(r.code).toBe(0)
  })

  it('reports a guest kernel panic as one', { timeout: BOOT }, async () => {
    const r = await exec(['--memory', '512'], ['sh', '-c', PANIC_SCRIPT])
    expect(r.stderr).toMatch(/^ktstr: guest kernel panic: .*panic_on_oom/im)
    expect(r.code).toBe(125)
  })

  it('reports a guest that resets itself', { timeout: BOOT }, async () => {
    // A reset does not flush: the 3 s give the init time to relay "before" to the host first (nested
    // under TCG, 1 s once was not enough and the host got no output).
    const r = await exec([], ['sh', '-c', 'echo before; sleep 3; reboot -f'])
    expect(r.stdout).toBe('before\n')
    expect(r.stderr).toMatch(/^ktstr: .*restarted the machine/m)
    expect(r.code).toBe(125)
  })
})
