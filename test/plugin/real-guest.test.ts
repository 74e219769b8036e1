/**
 * The pool on real guests: real Vitest (its CLI, as a user runs it) with `pool: 'ktstr'` over a
 * fixture project copied to a fresh folder, JSON reporter for the counts.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'real')
const VITEST = path.join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs')
let project: FixtureProject
let dir = ''
const vitest = (args: string[], files: string[]) => project.vitest(args, files)

describe.skipIf(guestSkipReason)('vitest --pool=ktstr on real guests', () => {
  beforeAll(() => {
    project = fixtureProject(FIXTURE)
    dir = project.dir
  })
  afterAll(() => project.remove())

  it('runs each file in its own guest: counts, diff, console capture, scheduler failure', { timeout: 300_000 }, async () => {
    const r = await vitest(['run'], ['pass-fail', 'false-scheduler'])
    expect(r.code).toBe(1)
    expect(r.json.numPassedTests).toBe(2)
    const byName = Object.fromEntries(r.json.testResults.map((t) => [path.basename(t.name), t]))
    const pf = byName['pass-fail.sched.test.ts']!
    expect(pf.assertionResults.map((a) => [a.title, a.status])).toEqual([
      ['scx_simple is attached', 'passed'],
      ['two CPUs are online', 'passed'],
      ['a failing expectation shows a diff', 'failed'],
    ])
    expect(pf.assertionResults[2]!.failureMessages.join('\n')).toContain("expected { scheduler: 'simple', cpus: 2 } to deeply equal { scheduler: 'central', cpus: 2 }")
    // The default reporter shows the usual diff, with a code frame from the source map.
    expect(r.out).toMatch(/-\s+"scheduler": "central",[\s\S]*\+\s+"scheduler": "simple",/)
    expect(r.out).toMatch(/pass-fail\.sched\.test\.ts:17:\d+/)
    expect(r.out).toContain('online=0-1')
    const fs_ = byName['false-scheduler.sched.test.ts']!
    expect(fs_.status).toBe('failed')
    expect(`${fs_.message}\n${fs_.assertionResults.flatMap((a) => a.failureMessages).join('\n')}`).toMatch(/scheduler false exited before attaching \(exit code 1\)/)
    expect(r.out).not.toMatch(/Timeout starting|timed out/i)
    expect(strayQemus(project)).toEqual([])
  })

  it('writes file and inline snapshots on the host, then matches them in a new guest', { timeout: 300_000 }, async () => {
    const first = await vitest(['run', '--update'], ['snapshots'])
    expect(first.code).toBe(0)
    const snap = fs.readFileSync(path.join(dir, '__snapshots__', 'snapshots.sched.test.ts.snap'), 'utf8')
    expect(snap).toMatch(/"release": "6\.\d+"/)
    expect(fs.readFileSync(path.join(dir, 'snapshots.sched.test.ts'), 'utf8')).toContain('toMatchInlineSnapshot(`"disabled"`)')
    const second = await vitest(['run'], ['snapshots'])
    expect(second.code).toBe(0)
    expect(second.json.numPassedTests).toBe(2)
  })

  it("a run restored from its template has its own environment, not the template's", { timeout: 300_000 }, async () => {
    // A Vitest run's template imports Vitest's worker with the run's environment, so each
    // environment has a template of its own: the second run must not inherit the first one's mark.
    const one = await project.vitest(['run'], ['env-mark'], { env: { KTSTR_TEST_MARK: 'one' } })
    expect(one.code).toBe(0)
    expect(one.out).toContain('mark=one')
    const two = await project.vitest(['run'], ['env-mark'], { env: { KTSTR_TEST_MARK: undefined } })
    expect(two.code).toBe(0)
    expect(two.out).toContain('mark=unset')
    expect(two.out).not.toContain('mark=one')
  })

  it('turns a TAP payload into separate tests', { timeout: 300_000 }, async () => {
    const r = await vitest(['run'], ['tap'])
    const file = r.json.testResults.find((t) => t.name.endsWith('tap.sched.test.ts'))!
    expect(file.assertionResults.map((a) => [a.title, a.status])).toEqual([
      ['sched_ext sysfs exists', 'passed'],
      ['two CPUs online', 'passed'],
      ['needs a disk', 'skipped'],
    ])
    expect(r.code).toBe(0)
  })

  it('runs a payload in its own cgroup beside a run() workload', { timeout: 300_000 }, async () => {
    const r = await vitest(['run'], ['payload-run'])
    expect(r.json.numPassedTests).toBe(1)
    expect(r.code).toBe(0)
  })

  it('vitest list --json names the tests of a sched file', { timeout: 300_000 }, async () => {
    const child = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const env = { ...process.env, NO_COLOR: '1' }
      const p = spawn(process.execPath, [VITEST, 'list', '--json', '--root', dir, 'pass-fail'], { cwd: dir, env })
      let out = ''
      p.stdout.on('data', (b) => (out += b))
      p.on('close', (code) => resolve({ code, out }))
    })
    expect(child.code).toBe(0)
    const listed = JSON.parse(child.out.slice(child.out.indexOf('['))) as { name: string }[]
    expect(listed.map((t) => t.name)).toEqual(['scx_simple is attached', 'two CPUs are online', 'a failing expectation shows a diff'])
  })
})
