/**
 * The parts of `npm run test:kvm`'s outer-guest runner (test/kvm/outer-guest.mjs) that do not need a
 * guest: an outer guest that goes quiet is stopped, one that keeps talking is not, and the files
 * the kvm suite's progress reporter calls done are read back from a real Vitest run of that suite.
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { repoRoot } from '../helpers/guest.js'
import { doneFiles, runOuterGuest } from '../kvm/outer-guest.mjs'

const node = (script: string) => ['-e', script]

describe('runOuterGuest', () => {
  it('stops a child that prints nothing for silenceMs (SIGTERM), keeping what it printed, and shows its console tail', async () => {
    // The child stands for ktstr: it writes the guest's console to KTSTR_CONSOLE_LOG.
    const script =
      'require("fs").writeFileSync(process.env.KTSTR_CONSOLE_LOG, "rcu: INFO: rcu_sched self-detected stall on CPU\\n"); console.log("booted"); setInterval(() => {}, 1000)'
    const said: string[] = []
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (said.push(String(chunk)), true))
    try {
      const r = await runOuterGuest(node(script), { quietStdout: true, silenceMs: 600 })
      expect(r).toMatchObject({ silent: true, signal: 'SIGTERM', stdout: 'booted\n' })
    } finally {
      spy.mockRestore()
    }
    expect(said.join('')).toMatch(/printed nothing for 0\.6 s; stopping it\n.*console:\nrcu: INFO: rcu_sched self-detected stall on CPU\n/s)
  })

  it('leaves a child that keeps printing (gaps shorter than silenceMs) to finish', async () => {
    const script = 'let n = 0; const t = setInterval(() => { console.log(n++); if (n === 6) { clearInterval(t) } }, 200)'
    const r = await runOuterGuest(node(script), { quietStdout: true, silenceMs: 700 })
    expect(r).toMatchObject({ silent: false, status: 0, stdout: '0\n1\n2\n3\n4\n5\n' })
  })
})

describe('doneFiles', () => {
  it('reads the files the progress reporter called passed or skipped from a real run of the kvm suite', () => {
    // Without /dev/kvm these files skip; with it, one quick test of teardown.test.ts runs.
    const r = spawnSync(
      process.execPath,
      [
        path.join(repoRoot, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        'vitest.kvm.config.ts',
        'test/kvm/exec.test.ts',
        'test/kvm/teardown.test.ts',
        '-t',
        'releases its fd',
      ],
      { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
    )
    expect(r.stdout).toMatch(/^test:kvm: file (passed|skipped) test\/kvm\/teardown\.test\.ts$/m)
    expect([...doneFiles(r.stdout)].sort()).toEqual(['test/kvm/exec.test.ts', 'test/kvm/teardown.test.ts'])
    expect(doneFiles('test:kvm: file failed test/kvm/a.test.ts\ntest:kvm: file passed test/kvm/b.test.ts\r\n')).toEqual(new Set(['test/kvm/b.test.ts']))
  })
})
