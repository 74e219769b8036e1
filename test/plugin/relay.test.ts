/**
 * The pool end to end, minus the VM: real Vitest (startVitest) runs a fixture project with the
 * `ktstr` pool, whose guests are the real guest session over child node processes running the
 * compiled guest worker (pool-run.ts). Needs `npm run build` first: the guest side runs from dist/.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ktstr } from 'ktstr/plugin'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JsonTestResults } from 'vitest/node'
import { createVitest, startVitest } from 'vitest/node'
import { maxGuests } from '../../plugin/capacity.js'
import { guestSize, specFromOptions } from '../../plugin/spec.js'
import { built, byTitle, copyFixture, fakeGuests, REPO, type RunResult, runFixture, sink } from './pool-run.js'

describe.skipIf(!built)('ktstr pool over a fake guest', () => {
  let basic: RunResult
  beforeAll(async () => {
    basic = await runFixture(['basic.sched.ts'])
  }, 120_000)
  afterAll(() => {
    if (basic) fs.rmSync(basic.root, { recursive: true, force: true })
  })

  it('runs the file in one guest and reports pass/fail counts', () => {
    expect(basic.guests.requests).toHaveLength(1)
    expect(basic.json.numTotalTests).toBe(9)
    expect(basic.json.numPassedTests).toBe(8)
    expect(basic.json.numFailedTests).toBe(1)
    expect(basic.guests.running()).toBe(0)
  })

  it('boots the guest with the docblock spec over the plugin defaults', () => {
    const req = basic.guests.requests[0]!
    expect(req).toMatchObject({ topology: '1n1l2c1t', memoryMib: 512, timeoutS: 120, cwd: basic.root })
    expect(req.mode).toEqual({ kind: 'vitest', workerEntry: path.join(REPO, 'dist', 'runtime', 'vitest', 'worker.js') })
    expect(req.env).toMatchObject({ VITEST: 'true', KTSTR_VITEST_DIST: path.join(REPO, 'node_modules', 'vitest', 'dist') })
    expect(req.env!.HOME).toBeUndefined()
    expect(req.extraImagePaths).toContain(fs.realpathSync(path.join(REPO, 'node_modules', 'vitest', 'dist', 'worker.js')))
  })

  it('carries a failing expect with its diff', () => {
    const failed = byTitle(basic, 'basic.sched.ts')['fails with a diff']!
    expect(failed.status).toBe('failed')
    expect(failed.failureMessages!.join('\n')).toContain("expected { scheduler: 'scx_simple', cpus: 2 } to deeply equal")
    expect(basic.output).toMatch(/- Expected\s*\n\+ Received/)
    expect(basic.output).toMatch(/-\s+"cpus": 4,\n\+\s+"cpus": 2,/)
  })

  it('captures console.log and raw stdout from the guest', () => {
    const log = basic.logs.find((l) => l.content.includes('hello from the guest'))
    expect(log?.type).toBe('stdout')
    expect(basic.output).toContain('raw stdout from the guest')
  })

  it('writes file and inline snapshots on the host, not in the guest', () => {
    const snap = path.join(basic.root, '__snapshots__', 'basic.sched.ts.snap')
    expect(fs.readFileSync(snap, 'utf8')).toContain('exports[`relay > file snapshot 1`]')
    expect(fs.readFileSync(path.join(basic.root, 'basic.sched.ts'), 'utf8')).toContain('toMatchInlineSnapshot(`')
    expect(basic.json.snapshot.added).toBe(2)
  })
})

describe.skipIf(!built)('ktstr pool with Vitest features', () => {
  it('collects tests in a guest for `vitest list`', async () => {
    const root = copyFixture()
    const guests = fakeGuests()
    const vitest = await createVitest(
      'test',
      { root, config: false, watch: false, include: ['*.sched.ts'], pool: 'ktstr', reporters: [] },
      { plugins: [ktstr({ boot: guests.boot })] },
    )
    try {
      const { testModules } = await vitest.collect(['basic.sched.ts', 'bad-docblock.sched.ts'])
      const names = (m: (typeof testModules)[number]) => [...m.children.allTests()].map((t) => t.name)
      const basic = testModules.find((m) => m.moduleId.endsWith('basic.sched.ts'))!
      expect(names(basic)).toEqual([
        'passes inside the guest',
        'fails with a diff',
        'logs',
        'each 1',
        'each 2',
        'each 3',
        'spies and fake timers',
        'file snapshot',
        'inline snapshot',
      ])
      expect(basic.state()).toBe('pending') // collected, not run
      const bad = testModules.find((m) => m.moduleId.endsWith('bad-docblock.sched.ts'))!
      expect(bad.errors()[0]?.message).toContain('unknown @ktstr key "colour"')
      expect(guests.requests).toHaveLength(1)
      expect(fs.existsSync(path.join(root, '__snapshots__'))).toBe(false)
    } finally {
      await vitest.close()
      fs.rmSync(root, { recursive: true, force: true })
    }
  }, 120_000)

  it('mixes with default-pool projects: only the ktstr project runs in guests, in a group of its own', async () => {
    // A real config file, as a user writes it (root plugin, projects with extends: true), using the
    // compiled plugin; the fake boot reaches it through a global.
    const root = copyFixture()
    const guests = fakeGuests()
    const outputFile = path.join(root, 'report.json')
    const g = globalThis as { __ktstrFakeBoot?: unknown }
    g.__ktstrFakeBoot = guests.boot
    fs.writeFileSync(
      path.join(root, 'vitest.config.mjs'),
      [
        `import { ktstr } from ${JSON.stringify(path.join(REPO, 'dist', 'plugin', 'index.js'))}`,
        'export default {',
        '  plugins: [ktstr({ boot: globalThis.__ktstrFakeBoot })],',
        '  test: {',
        '    projects: [',
        "      { extends: true, test: { name: 'unit', include: ['*.unit.ts'] } },",
        "      { extends: true, test: { name: 'sched', include: ['*.sched.ts'], pool: 'ktstr' } },",
        '    ],',
        '  },',
        '}',
      ].join('\n'),
    )
    const exitCode = process.exitCode
    const vitest = await startVitest('test', ['basic.sched.ts', 'math.unit.ts'], { root, watch: false, reporters: [['json', { outputFile }]], update: 'new' }, undefined, {
      stdout: sink(),
      stderr: sink(),
    })
    process.exitCode = exitCode
    try {
      expect(vitest.state.getUnhandledErrors()).toEqual([])
      const json = JSON.parse(fs.readFileSync(outputFile, 'utf8')) as JsonTestResults
      const status = (f: string) => json.testResults.find((t) => t.name.endsWith(f))?.status
      expect(status('math.unit.ts')).toBe('passed')
      expect(status('basic.sched.ts')).toBe('failed') // its one failing test
      expect(guests.requests).toHaveLength(1)
      const sched = vitest.projects.find((p) => p.name === 'sched')!
      const unit = vitest.projects.find((p) => p.name === 'unit')!
      expect(sched.config.poolRunner?.name).toBe('ktstr')
      expect(unit.config.poolRunner).toBeUndefined()
      expect(sched.config.maxWorkers).toBe(maxGuests(guestSize(specFromOptions({}))))
      expect(sched.config.sequence.groupOrder).toBe(unit.config.sequence.groupOrder + 1)
    } finally {
      await vitest.close()
      delete g.__ktstrFakeBoot
      fs.rmSync(root, { recursive: true, force: true })
    }
  }, 120_000)

  it('--bail cancels a file running in another guest', async () => {
    const r = await runFixture(['basic.sched.ts', 'slow.sched.ts'], { bail: 1, maxWorkers: 2 })
    fs.rmSync(r.root, { recursive: true, force: true })
    // Depending on timing the cancel reaches the slow file's guest mid-run (the rest of its tests
    // are skipped) or before its run started (the file is left unrun, as Vitest's own cancelFiles does).
    const slowFile = r.json.testResults.find((t) => t.name.endsWith('slow.sched.ts'))
    const slow = slowFile?.assertionResults ?? []
    expect(r.guests.requests).toHaveLength(2)
    expect(slow.filter((t) => t.status === 'passed').length).toBeLessThan(6)
    expect(slow.filter((t) => t.status === 'failed')).toEqual([])
    expect(slowFile?.status).not.toBe('failed')
    expect(r.json.numFailedTests).toBe(1)
    expect(r.guests.running()).toBe(0)
  }, 120_000)

  it('reports a stray rejection as Vitest does, instead of the guest init dying of it', async () => {
    const r = await runFixture(['unhandled.sched.ts'])
    fs.rmSync(r.root, { recursive: true, force: true })
    expect(r.json.numPassedTests).toBe(1)
    expect(r.unhandled).toHaveLength(1)
    expect((r.unhandled[0] as Error).message).toBe('stray rejection in the guest')
    expect(r.output).not.toContain('KtstrError')
  }, 120_000)

  it('honours -t (testNamePattern) across the v8 channel', async () => {
    const r = await runFixture(['basic.sched.ts'], { testNamePattern: '^relay each' })
    fs.rmSync(r.root, { recursive: true, force: true })
    expect(r.json.numPassedTests).toBe(3)
    expect(r.json.numFailedTests).toBe(0)
    expect(r.json.numPendingTests).toBe(6)
  }, 120_000)
})

describe.skipIf(!built)('guest failures become failed files', () => {
  let r: RunResult
  beforeAll(async () => {
    r = await runFixture(['panic.sched.ts', 'sched-exit.sched.ts', 'bad-docblock.sched.ts', 'boot-fail.sched.ts', 'attach-fail.sched.ts', 'hang.sched.ts'])
  }, 180_000)
  afterAll(() => {
    if (r) fs.rmSync(r.root, { recursive: true, force: true })
  })

  /** The failure text of a file: its own error, or (once, not repeated on the file) its failed test's. */
  const fileMessage = (file: string) => {
    const result = r.json.testResults.find((t) => t.name.endsWith(file))
    return [result?.message ?? '', ...(result?.assertionResults ?? []).flatMap((a) => a.failureMessages ?? [])].join('\n')
  }

  it('fails every one of them, and leaves no guest behind', () => {
    expect(r.json.numFailedTestSuites).toBe(6)
    expect(r.json.success).toBe(false)
    expect(r.guests.running()).toBe(0)
    expect(r.output).not.toContain('Timeout starting')
  })

  it('kernel panic: the running test fails, the rest are skipped, the file shows the console', () => {
    const t = byTitle(r, 'panic.sched.ts')
    expect(t['before the panic']!.status).toBe('passed')
    expect(t['panics the kernel']!.status).toBe('failed')
    expect(t['panics the kernel']!.failureMessages![0]).toContain('guest kernel panic: Attempted to kill init!')
    expect(t['after the panic']!.status).toBe('skipped')
    expect(r.json.testResults.find((f) => f.name.endsWith('panic.sched.ts'))!.status).toBe('failed')
    expect(fileMessage('panic.sched.ts')).toContain('Last kernel console lines:')
    expect(fileMessage('panic.sched.ts')).toContain('Kernel panic - not syncing: Attempted to kill init!')
  })

  it('scheduler ejected: names the scheduler and the kernel reason', () => {
    const msg = fileMessage('sched-exit.sched.ts')
    expect(msg).toContain('scheduler scx_simple exited while the guest was running')
    expect(msg).toContain('runnable task stall')
    expect(msg).toContain('sched_ext: BPF scheduler "simple" disabled')
    expect(r.guests.requests.find((q) => q.schedArgs)?.schedArgs).toEqual(['-v', '--slice-us', '5000'])
  })

  it('bad docblock: names the key, boots nothing', () => {
    expect(fileMessage('bad-docblock.sched.ts')).toContain('unknown @ktstr key "colour"')
    expect(r.guests.requests.some((q) => q.topology === '1n2l4c1t')).toBe(false)
  })

  it('boot failure and scheduler attach failure carry the console tail', () => {
    expect(fileMessage('boot-fail.sched.ts')).toContain('guest failed to boot')
    expect(fileMessage('boot-fail.sched.ts')).toContain('No working init found')
    expect(fileMessage('attach-fail.sched.ts')).toContain('scheduler scx_broken failed to start: scx_broken exited before attaching')
    expect(fileMessage('attach-fail.sched.ts')).toContain('ops.init() failed (-22)')
  })

  it('a guest past its timeout fails the file with the limit, not a Vitest timeout', () => {
    const msg = fileMessage('hang.sched.ts')
    expect(msg).toContain('the test file did not finish within 6s')
    // Failed if the test had started when the limit hit, skipped if the (loaded) host was slower.
    expect(byTitle(r, 'hang.sched.ts').hangs?.status).not.toBe('passed')
    expect(r.output).not.toContain('Test timed out')
  })
})
