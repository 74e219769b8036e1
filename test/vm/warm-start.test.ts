/**
 * Warm start in real QEMU guests (src/vm/warm/): `ktstr exec` restores a snapshot of a booted guest
 * of its shape. Each test has its own snapshot folder (KTSTR_SNAPSHOT_DIR), so it sees the
 * snapshots made or kept for it alone; KTSTR_LOG=debug says what the warm start did.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { StreamId } from '../../runtime/protocol/index.js'
import { manifestPath, partPath, sampleHash } from '../../src/image/cache-entry.js'
import { resolveKernel } from '../../src/kernel/resolve.js'
import { resolveScheduler } from '../../src/kernel/schedulers.js'
import { bootGuest } from '../../src/vm/boot.js'
import { dropStandby } from '../../src/vm/warm/standby.js'
import { guestSkipReason, runCli } from '../helpers/guest.js'
import { MARK, made, restored, snapshotDir, snapshots, why } from '../helpers/warm.js'

const BOOT = 240_000
const exec = (dir: string, args: string[], cmd: string[]) =>
  runCli(['exec', '--timing', '--timeout', '120', ...args, '--', ...cmd], { env: { KTSTR_SNAPSHOT_DIR: dir, KTSTR_LOG: 'debug' }, timeoutMs: BOOT })

/** QEMUs this process started (other test files' guests are not ours). */
function childQemus(): string[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const ppid = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]
        return Number(ppid) === process.pid && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu-system')
      } catch {
        return false // gone
      }
    })
}

describe.skipIf(guestSkipReason)('warm start (QEMU)', () => {
  it('restores a pristine guest of the same shape, with the host clock; another shape gets its own snapshot; --cold boots', { timeout: 4 * BOOT }, async () => {
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
    // The template's clock was minutes old by now; the restored guest has the host's.
    expect(Math.abs(Number(lines[0]) - Date.now() / 1000)).toBeLessThan(10)
    expect(snapshots(dir, 'qemu')).toHaveLength(1)

    // The loopback interface is up (IFF_UP | IFF_LOOPBACK) in a restored guest and a cold one.
    const bigger = await exec(dir, ['--memory', '768'], ['cat', '/sys/class/net/lo/flags'])
    expect(bigger.code, why(bigger)).toBe(0)
    expect(bigger.stdout).toBe('0x9\n')
    expect(made(bigger.stderr)).toBe(true)
    expect(snapshots(dir, 'qemu')).toHaveLength(2)

    const cold = await exec(dir, ['--cold'], ['cat', '/sys/class/net/lo/flags'])
    expect(cold.code, why(cold)).toBe(0)
    expect(cold.stdout).toBe('0x9\n')
    expect(cold.stderr).toContain('warm start off: asked for a cold boot (--cold, warm=false)')
    expect(cold.stderr).toMatch(/^ {2}vmm start +\d+\.\d+ s$/m)
    expect(restored(cold.stderr)).toBe(false)
  })

  it('attaches a scheduler in a restored guest: the run archive brings the binary and its libraries', { timeout: BOOT }, async () => {
    const dir = snapshotDir()
    const r = await exec(dir, ['--scheduler', 'scx_simple'], ['cat', '/sys/kernel/sched_ext/root/ops'])
    expect(r.code, why(r)).toBe(0)
    expect(restored(r.stderr)).toBe(true)
    expect(r.stdout).toBe('simple\n')
  })

  it('a snapshot cut short is made again; one QEMU refuses is dropped and the run boots cold', { timeout: 4 * BOOT }, async () => {
    const dir = snapshotDir()
    const first = await exec(dir, [], ['true'])
    expect(first.code, why(first)).toBe(0)
    const file = path.join(dir, snapshots(dir, 'qemu')[0]!)

    // Its RAM part cut short: found before QEMU starts, made again, and the run restores it.
    fs.truncateSync(partPath(file, 'ram0'), 4096)
    const cut = await exec(dir, [], ['echo', 'ok'])
    expect(cut.code, why(cut)).toBe(0)
    expect(cut.stdout).toBe('ok\n')
    expect(cut.stderr).toMatch(/snapshot \S+ has \S+\.part-ram0 of 4096 bytes, not \d+; making it again/)
    expect(made(cut.stderr)).toBe(true)
    expect(restored(cut.stderr)).toBe(true)

    // The state stream replaced by garbage its manifest vouches for: QEMU refuses it; the run goes on cold.
    const garbage = Buffer.alloc(fs.statSync(file).size, 0x5a)
    fs.writeFileSync(file, garbage)
    const m = JSON.parse(fs.readFileSync(manifestPath(file), 'utf8'))
    fs.writeFileSync(manifestPath(file), JSON.stringify({ ...m, sample: sampleHash(file, garbage.length) }))
    const refused = await exec(dir, [], ['echo', 'still ok'])
    expect(refused.code, why(refused)).toBe(0)
    expect(refused.stdout).toBe('still ok\n')
    expect(refused.stderr).toMatch(/warm start: QEMU could not restore the snapshot: .+; dropping \S+ and booting cold/)
    expect(restored(refused.stderr)).toBe(false)
    expect(fs.existsSync(file)).toBe(false)
    expect(fs.existsSync(partPath(file, 'ram0'))).toBe(false)
  })

  it('a run with more than 32 MiB of its own files boots cold: the initramfs carries them faster', { timeout: BOOT }, async () => {
    const dir = snapshotDir()
    const big = path.join(dir, 'payload.bin')
    fs.writeFileSync(big, Buffer.alloc(40 << 20, 7))
    const r = await exec(dir, ['--memory', '768', '--include', big], ['sh', '-c', `wc -c < ${big}`])
    expect(r.code, why(r)).toBe(0)
    expect(r.stdout.trim()).toBe(String(40 << 20))
    expect(r.stderr).toMatch(/warm start off: the run's own files take 40 MiB, more than the 32 MiB sent to a restored guest/)
    expect(restored(r.stderr)).toBe(false)
  })

  it('a run that turns out cold stops the QEMU it had started for a restore', { timeout: BOOT }, async () => {
    // The QEMU for a restore starts before the run's files are known; 40 MiB of them make the run
    // cold, and that QEMU must not be left waiting for a snapshot (in this process: no CLI exit
    // ends it here).
    const dir = snapshotDir()
    const big = path.join(dir, 'payload.bin')
    fs.writeFileSync(big, Buffer.alloc(40 << 20, 7))
    vi.stubEnv('KTSTR_SNAPSHOT_DIR', dir)
    try {
      const session = await bootGuest({ mode: { kind: 'exec', argv: ['true'], tty: false }, memoryMib: 768, include: [big] })
      expect(session.timing.restoredMs).toBeUndefined() // booted cold
      expect(await session.done).toEqual({ kind: 'exited', code: 0, signal: null })
      await vi.waitFor(() => expect(childQemus()).toEqual([]), { timeout: 5000 })
      expect(snapshots(dir, 'qemu')).toEqual([])
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('watch mode: the next run of a shape claims a guest restored ahead of it, as pristine; none is kept after Vitest closes', { timeout: 4 * BOOT }, async () => {
    const dir = snapshotDir()
    vi.stubEnv('KTSTR_SNAPSHOT_DIR', dir)
    const run = async (onBooted = () => {}, argv = MARK) => {
      const session = await bootGuest({ mode: { kind: 'exec', argv, tty: false } }, { standby: true })
      onBooted()
      let out = ''
      session.channel.on('data', (stream, chunk) => {
        if (stream === StreamId.Stdout) out += chunk.toString()
      })
      expect(await session.done).toEqual({ kind: 'exited', code: 0, signal: null })
      return { out, timing: session.timing }
    }
    try {
      const first = await run()
      expect(first.timing.standby).toBeUndefined()
      // Its guest is gone; one of its shape is restored for the next run.
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      const second = await run()
      expect(second.timing.standby).toBe(true)
      expect(second.timing.vmStartedMs).toBe(0)
      // The same files as the first run's (its spec): the guest was primed with them, none were sent.
      expect(second.timing.primed).toBe(true)
      // Pristine: no marker of the first run, nothing left by its rehearsal; the host's clock, not the template's.
      const lines = second.out.trim().split('\n')
      expect(lines).toHaveLength(1)
      expect(Math.abs(Number(lines[0]) - Date.now() / 1000)).toBeLessThan(10)
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      // Other files (another command in its spec): the standby is claimed, and they are sent.
      const other = await run(undefined, [...MARK.slice(0, 2), `${MARK[2]}; echo other`])
      expect(other.timing.standby).toBe(true)
      expect(other.timing.primed).toBeUndefined()
      expect(other.out.trim().split('\n').slice(1)).toEqual(['other'])
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      dropStandby()
      await vi.waitFor(() => expect(childQemus()).toEqual([]), { timeout: 5000 })
      // Dropped, not broken: the snapshot is still there.
      expect(snapshots(dir, 'qemu')).toHaveLength(1)
      // Vitest closes while a run's guest still runs: none is restored after it ends.
      const third = await run(dropStandby)
      expect(third.timing.standby).toBeUndefined()
      expect(third.out.trim().split('\n')).toHaveLength(1)
      await new Promise((r) => setTimeout(r, 2000))
      expect(childQemus()).toEqual([])
      expect(snapshots(dir, 'qemu')).toHaveLength(1)
    } finally {
      dropStandby()
      vi.unstubAllEnvs()
    }
  })

  it('watch mode with a scheduler: the guest restored ahead attaches it for a run of the same files; other files get a guest of their own', { timeout: 5 * BOOT }, async () => {
    const dir = snapshotDir()
    vi.stubEnv('KTSTR_SNAPSHOT_DIR', dir)
    // Included in every run: its content is in the archive, its path in the spec.
    const data = path.join(dir, 'data.txt')
    fs.writeFileSync(data, 'one\n')
    const SCX = `cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops ${data}`
    const run = async (cmd: string, onBooted = () => {}) => {
      const session = await bootGuest(
        { mode: { kind: 'exec', argv: [...MARK.slice(0, 2), `${MARK[2]}; ${cmd}`], tty: false }, scheduler: 'scx_simple', include: [data] },
        { standby: true },
      )
      onBooted()
      let out = ''
      session.channel.on('data', (stream, chunk) => {
        if (stream === StreamId.Stdout) out += chunk.toString()
      })
      expect(await session.done).toEqual({ kind: 'exited', code: 0, signal: null })
      // The clock line of MARK (no marker of an earlier run, nothing a rehearsal left), then the command's.
      const [clock, ...rest] = out.trim().split('\n')
      expect(Math.abs(Number(clock) - Date.now() / 1000)).toBeLessThan(10)
      return { rest, timing: session.timing }
    }
    try {
      const first = await run(SCX)
      expect(first.timing.schedulerAhead).toBeUndefined()
      expect(first.rest).toEqual(['enabled', 'simple', 'one'])
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      // The same files: the guest restored ahead started scx_simple while it waited.
      const second = await run(SCX)
      expect(second.timing).toMatchObject({ standby: true, primed: true, schedulerAhead: true })
      expect(second.rest).toEqual(['enabled', 'simple', 'one'])
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      // Another spec (another command): that guest runs the last spec's scheduler, so this run
      // restores a guest of its own; the standby stays, idle, for a run of its spec meanwhile.
      const other = await run(`${SCX}; echo other`, () => expect(childQemus()).toHaveLength(2))
      expect(other.timing.standby).toBeUndefined()
      expect(other.timing.schedulerAhead).toBeUndefined()
      expect(other.timing.restoredMs).toBeGreaterThan(0)
      expect(other.rest).toEqual(['enabled', 'simple', 'one', 'other'])
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      // The same spec, other files (an include changed, as a rebuilt scheduler would): the standby
      // is stale, dropped, and the run restores its own.
      fs.writeFileSync(data, 'two\n')
      const changed = await run(`${SCX}; echo other`)
      expect(changed.timing.standby).toBeUndefined()
      expect(changed.timing.restoredMs).toBeGreaterThan(0)
      expect(changed.rest).toEqual(['enabled', 'simple', 'two', 'other'])
    } finally {
      dropStandby()
      vi.unstubAllEnvs()
    }
    await vi.waitFor(() => expect(childQemus()).toEqual([]), { timeout: 5000 })
  })

  it('watch mode: a scheduler attached ahead that exits while the guest waits fails the run that claims it, with its exit', { timeout: 4 * BOOT }, async () => {
    const dir = snapshotDir()
    vi.stubEnv('KTSTR_SNAPSHOT_DIR', dir)
    const scxSimple = resolveScheduler(await resolveKernel(), 'scx_simple').path
    // A scheduler that detaches by itself 2 s after it started (exit code 7), or at once when stopped.
    const script = path.join(dir, 'short-lived-scheduler')
    fs.writeFileSync(script, `#!/bin/sh\n${scxSimple} & pid=$!\ntrap 'kill -INT $pid; wait $pid; exit 0' INT TERM\nsleep 2 & wait $!\nkill -INT $pid; wait $pid; exit 7\n`, {
      mode: 0o755,
    })
    const run = async () => {
      const session = await bootGuest({ mode: { kind: 'exec', argv: ['true'], tty: false }, scheduler: script, include: [scxSimple] }, { standby: true })
      return { outcome: await session.done, timing: session.timing }
    }
    try {
      expect((await run()).outcome).toEqual({ kind: 'exited', code: 0, signal: null })
      await vi.waitFor(() => expect(childQemus()).toHaveLength(1), { timeout: 30_000, interval: 100 })
      // Restored (~0.5 s), rehearsed (~1 s), attached (~0.5 s), and 2 s later detached by itself:
      // a run claiming it any earlier would find it attached (and pass).
      await new Promise((r) => setTimeout(r, 12_000))
      const second = await run()
      expect(second.timing).toMatchObject({ standby: true, primed: true })
      expect(second.outcome).toMatchObject({
        kind: 'scheduler-failed',
        message: expect.stringMatching(/^the scheduler exited while the guest waited for the run/),
        exit: { code: 7, signal: null },
      })
    } finally {
      dropStandby()
      vi.unstubAllEnvs()
    }
  })

  const notRoot = process.getuid?.() !== 0
  it.skipIf(notRoot)('a disk too full for the snapshot: the run boots cold, and nothing is left half written', { timeout: BOOT }, async () => {
    const dir = snapshotDir()
    const { execFileSync } = await import('node:child_process')
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'ktstr-full', dir])
    try {
      const r = await exec(dir, [], ['echo', 'cold'])
      expect(r.code, why(r)).toBe(0)
      expect(r.stdout).toBe('cold\n')
      expect(r.stderr).toMatch(/warm start: no snapshot \(.*(No space left on device|ENOSPC|migration failed).*\); booting cold/)
      expect(restored(r.stderr)).toBe(false)
      expect(fs.readdirSync(dir).filter((n) => !n.endsWith('.lock'))).toEqual([])
    } finally {
      execFileSync('umount', [dir])
    }
  })
})
