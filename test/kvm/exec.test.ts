/**
 * `ktstr exec --backend kvm` end to end: our own VMM boots the guest kernel to a command's output.
 * Needs a usable /dev/kvm; `npm run test:kvm` provides one nested inside a QEMU-TCG guest where
 * the host has none.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { probeKvm } from '../../src/vm/accel.js'

const repoRoot = path.resolve(import.meta.dirname, '..', '..')
const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')
const sharedKernel = path.resolve(repoRoot, '..', 'shared', 'guest')
const kernel = process.env.KTSTR_KERNEL ?? (fs.existsSync(path.join(sharedKernel, 'bzImage')) ? sharedKernel : undefined)

const kvm = probeKvm()
const skipReason = !kvm.usable
  ? `KVM is not usable here (${kvm.reason}); run npm run test:kvm`
  : !fs.existsSync(cliPath)
    ? `${cliPath} is missing (npm run build)`
    : !kernel
      ? 'no guest kernel (set KTSTR_KERNEL)'
      : undefined
if (skipReason) console.warn(`[ktstr tests] skipping kvm-backend guests: ${skipReason}`)

/** Nested under TCG a boot takes tens of seconds; the 8-vCPU topology the longest. */
const BOOT = 280_000

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function exec(args: string[], cmd: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'exec', '--backend', 'kvm', '--timeout', '240', ...args, '--', ...cmd], {
      env: { ...process.env, KTSTR_KERNEL: kernel, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    child.on('error', reject)
    child.on('close', (code) => {
      // Shown in the test log: the boot phases nested runs take, or why ktstr failed.
      const timing = /ktstr timing:[\s\S]*/.exec(stderr)?.[0]
      if (timing) console.log(`${cmd.join(' ').slice(0, 60)}\n${timing}`)
      if (code === 125) console.log(`ktstr failed:\n${stderr.split('\n').slice(-60).join('\n')}`)
      resolve({ code, stdout, stderr })
    })
  })
}

describe.skipIf(skipReason)('ktstr exec --backend kvm (our VMM)', () => {
  it("boots to the command's output", { timeout: BOOT }, async () => {
    const r = await exec(['--timing'], ['echo', 'hello from the kvm backend'])
    expect(r.stdout).toBe('hello from the kvm backend\n')
    expect(r.stderr).toMatch(/ktstr timing:[\s\S]*kernel +\d+\.\d+ s[\s\S]*command +\d+\.\d+ s/)
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

  it('2n2l2c2t: 8 CPUs, 2 NUMA nodes, SMT pairs, 2 LLC groups', { timeout: BOOT }, async () => {
    const r = await exec(['--topology', '2n2l2c2t'], ['sh', '-c', topologyScript])
    expect(r.stdout.split('\n')).toEqual(['0-7', '2', '0-3 4-7 ', '0-1 2-3 4-5 6-7 ', '0-3 4-7 ', ''])
    expect(r.code).toBe(0)
  })

  it('attaches scx_simple', { timeout: BOOT }, async () => {
    const r = await exec(['--scheduler', 'scx_simple'], ['sh', '-c', 'cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops'])
    expect(r.stdout).toBe('enabled\nsimple\n')
    expect(r.code).toBe(0)
  })

  it('reports a guest kernel panic as one', { timeout: BOOT }, async () => {
    const r = await exec([], ['sh', '-c', 'echo c > /proc/sysrq-trigger'])
    expect(r.stderr).toMatch(/^ktstr: guest kernel panic: .*sysrq/im)
    expect(r.code).toBe(125)
  })
})
