/**
 * Warm start on our VMM (src/vm/kvm/snapshot/): `ktstr exec --backend kvm` restores a snapshot of
 * a booted guest of its shape — vCPU and in-kernel irqchip/PIT/clock state, the devices' state, and
 * guest RAM mapped copy-on-write from the snapshot's file. Each test has its own snapshot folder
 * (KTSTR_SNAPSHOT_DIR); KTSTR_LOG=debug says what the warm start did.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { StreamId } from '../../runtime/protocol/index.js'
import { manifestPath, partPath, sampleHash } from '../../src/image/cache-entry.js'
import { runCli } from '../helpers/cli.js'
import { testKernel } from '../helpers/repo.js'
import { MARK, made, restored, snapshotDir, snapshots, why } from '../helpers/warm.js'
import { BOOT, skipReason } from './helpers.js'

async function exec(dir: string, args: string[], cmd: string[]) {
  const r = await runCli(['exec', '--backend', 'kvm', '--timing', '--timeout', '150', ...args, '--', ...cmd], {
    // Its own folder, removed after the file: room for the two shapes the first test keeps (the
    // suite's outer guest caps snapshots lower, test/kvm/run.mjs).
    env: { KTSTR_KERNEL: testKernel, KTSTR_SNAPSHOT_DIR: dir, KTSTR_SNAPSHOT_CACHE_MIB: '2048', KTSTR_LOG: 'debug', NO_COLOR: '1' },
    timeoutMs: 2 * BOOT,
  })
  const timing = /ktstr timing:[\s\S]*/.exec(r.stderr)?.[0]
  // What the warm start did (or why not), and the boot phases.
  const warm = r.stderr.split('\n').filter((l) => /warm start|kvm: (vCPU|kept)/.test(l))
  console.log(`${cmd.join(' ').slice(0, 60)}\n${[...warm, timing ?? ''].join('\n')}`)
  return r
}

describe.skipIf(skipReason)('warm start (kvm backend)', () => {
  it('restores a pristine guest of the same shape, with the host clock; another shape gets its own snapshot', { timeout: 6 * BOOT }, async () => {
    const dir = snapshotDir()
    const first = await exec(dir, [], MARK)
    expect(first.code, why(first)).toBe(0)
    expect(made(first.stderr)).toBe(true)
    expect(restored(first.stderr)).toBe(true)
    // The template rehearsed a run (runtime/init/template.ts) without a complaint on its console.
    expect(first.stderr).not.toMatch(/the template guest said/)

    const second = await exec(dir, [], MARK)
    expect(second.code, why(second)).toBe(0)
    expect(made(second.stderr)).toBe(false)
    expect(restored(second.stderr)).toBe(true)
    // Only the clock line: no marker of the first run (nor of the template) in /tmp.
    const lines = second.stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(Math.abs(Number(lines[0]) - Date.now() / 1000)).toBeLessThan(30)
    expect(snapshots(dir, 'kvm')).toHaveLength(1)

    // Both vCPUs of the restored guest run: a task pinned to each.
    const cpus = await exec(dir, [], ['sh', '-c', 'for c in 0 1; do taskset -c $c cat /proc/self/stat | cut -d" " -f39; done'])
    expect(cpus.code, why(cpus)).toBe(0)
    expect(cpus.stdout).toBe('0\n1\n')

    const other = await exec(dir, ['--topology', '1n1l1c1t'], ['echo', 'one cpu'])
    expect(other.code, why(other)).toBe(0)
    expect(other.stdout).toBe('one cpu\n')
    expect(made(other.stderr)).toBe(true)
    expect(snapshots(dir, 'kvm')).toHaveLength(2)
  })

  it('watch mode: the next run claims a guest of our VMM restored ahead of it, primed with its files and its scheduler attached, as pristine', { timeout: 4 * BOOT }, async () => {
    // Compiled: the VMM's vCPU and blk threads run dist/'s JavaScript, and the standby is the one bootGuest keeps.
    const { bootGuest } = (await import(new URL('../../dist/src/vm/boot.js', import.meta.url).href)) as typeof import('../../src/vm/boot.js')
    const { dropStandby } = (await import(new URL('../../dist/src/vm/warm/standby.js', import.meta.url).href)) as typeof import('../../src/vm/warm/standby.js')
    vi.stubEnv('KTSTR_KERNEL', testKernel)
    vi.stubEnv('KTSTR_SNAPSHOT_DIR', snapshotDir())
    vi.stubEnv('KTSTR_SNAPSHOT_CACHE_MIB', '2048')
    const run = async () => {
      const argv = [...MARK.slice(0, 2), `${MARK[2]}; cat /sys/kernel/sched_ext/state`]
      const session = await bootGuest({ backend: 'kvm', timeoutS: 150, scheduler: 'scx_simple', mode: { kind: 'exec', argv, tty: false } }, { standby: true })
      let out = ''
      session.channel.on('data', (stream, chunk) => {
        if (stream === StreamId.Stdout) out += chunk.toString()
      })
      expect(await session.done).toEqual({ kind: 'exited', code: 0, signal: null })
      return { lines: out.trim().split('\n'), timing: session.timing }
    }
    try {
      const first = await run()
      expect(first.timing.standby).toBeUndefined()
      // Its guest ended: one of its shape is being restored and primed; the next run waits for it.
      const second = await run()
      expect(second.timing).toMatchObject({ standby: true, primed: true, schedulerAhead: true })
      // No marker of the first run, nothing a rehearsal left; the host's clock; scx_simple attached.
      expect(second.lines).toHaveLength(2)
      expect(second.lines[1]).toBe('enabled')
      expect(Math.abs(Number(second.lines[0]) - Date.now() / 1000)).toBeLessThan(30)
    } finally {
      dropStandby()
      vi.unstubAllEnvs()
    }
  })

  it('a snapshot cut short is made again; one made with another CPUID is dropped and the run boots cold', { timeout: 4 * BOOT }, async () => {
    const dir = snapshotDir()
    const first = await exec(dir, [], ['true'])
    expect(first.code, why(first)).toBe(0)
    const file = path.join(dir, snapshots(dir, 'kvm')[0]!)

    fs.truncateSync(partPath(file, 'ram'), 4096)
    const cut = await exec(dir, [], ['echo', 'ok'])
    expect(cut.code, why(cut)).toBe(0)
    expect(cut.stdout).toBe('ok\n')
    expect(cut.stderr).toMatch(/snapshot \S+ has \S+\.part-ram of 4096 bytes, not \d+; making it again/)
    expect(made(cut.stderr)).toBe(true)
    expect(restored(cut.stderr)).toBe(true)

    // A state file its manifest vouches for, whose vCPU 1 was given another CPUID (as after a host
    // kernel or CPU change): refused by that vCPU's thread once the VM exists, which is torn down;
    // the run goes on cold.
    const state = JSON.parse(fs.readFileSync(file, 'utf8'))
    const cpuid = Buffer.from(state.vcpus[1].cpuid, 'base64')
    cpuid[8 + 12] = cpuid[8 + 12]! ^ 0x01 // the first entry's eax
    state.vcpus[1].cpuid = cpuid.toString('base64')
    const edited = Buffer.from(JSON.stringify(state))
    fs.writeFileSync(file, edited)
    const m = JSON.parse(fs.readFileSync(manifestPath(file), 'utf8'))
    fs.writeFileSync(manifestPath(file), JSON.stringify({ ...m, bytes: edited.length, sample: sampleHash(file, edited.length) }))
    const refused = await exec(dir, [], ['echo', 'still ok'])
    expect(refused.code, why(refused)).toBe(0)
    expect(refused.stdout).toBe('still ok\n')
    expect(refused.stderr).toMatch(/warm start: the snapshot's vCPU had another CPUID \(the host's kernel, KVM or CPU changed\); dropping \S+ and booting cold/)
    expect(restored(refused.stderr)).toBe(false)
    expect(fs.existsSync(file)).toBe(false)
  })

  const notRoot = process.getuid?.() !== 0
  it.skipIf(notRoot)('a disk too full for the snapshot: the run boots cold, and nothing is left half written', { timeout: 3 * BOOT }, async () => {
    const dir = snapshotDir()
    const { execFileSync } = await import('node:child_process')
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'ktstr-full', dir])
    try {
      const r = await exec(dir, [], ['echo', 'cold'])
      expect(r.code, why(r)).toBe(0)
      expect(r.stdout).toBe('cold\n')
      expect(r.stderr).toMatch(/warm start: no snapshot \(.*(No space left on device|ENOSPC).*\); booting cold/)
      expect(restored(r.stderr)).toBe(false)
      expect(fs.readdirSync(dir).filter((n) => !n.endsWith('.lock'))).toEqual([])
    } finally {
      execFileSync('umount', [dir])
    }
  })
})
