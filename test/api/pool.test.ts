/**
 * A user's sched test file run by the real pool (`vitest` with `pool: 'ktstr'`): it imports 'ktstr'
 * by name, the matchers are registered on Vitest's expect by the pool's guest bootstrap, and a
 * failing matcher's message reaches the host's reporter naming the starved worker.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildWorkload } from '../../runtime/workloads/build-workload.js'
import { guestSkipReason, repoRoot } from '../helpers/guest.js'

const FIXTURE = path.join(import.meta.dirname, 'pool-fixture')
const VITEST = path.join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs')
let dir = ''

interface JsonReport {
  testResults: { assertionResults: { title: string; status: string; failureMessages: string[] }[] }[]
}

describe.skipIf(!!guestSkipReason)('ktstr API through the ktstr pool', () => {
  beforeAll(() => {
    buildWorkload(repoRoot)
    const tmpRoot = path.join(repoRoot, 'test', 'fixtures', '.tmp')
    fs.mkdirSync(tmpRoot, { recursive: true })
    dir = fs.mkdtempSync(path.join(tmpRoot, 'api-'))
    fs.copyFileSync(path.join(FIXTURE, 'vitest.config.mjs'), path.join(dir, 'vitest.config.mjs'))
    fs.copyFileSync(path.join(FIXTURE, 'fairness.sched.txt'), path.join(dir, 'fairness.sched.test.ts'))
  })
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('runs the fairness test in a guest and reports the starved worker by name', { timeout: 300_000 }, async () => {
    const jsonFile = path.join(dir, 'report.json')
    const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [VITEST, 'run', '--root', dir, '--reporter=default', '--reporter=json', `--outputFile.json=${jsonFile}`], {
        cwd: dir,
        env,
      })
      let out = ''
      child.stdout.on('data', (b) => (out += b))
      child.stderr.on('data', (b) => (out += b))
      child.on('close', (c) => resolve({ code: c, out }))
    })
    expect(fs.existsSync(jsonFile), out).toBe(true)
    const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as JsonReport
    const results = report.testResults.flatMap((f) => f.assertionResults)
    expect(code).toBe(1)
    expect(results.map((r) => [r.title, r.status])).toEqual([
      ['two equal cgroups share the CPUs fairly', 'passed'],
      ['a SCHED_IDLE spinner under a SCHED_FIFO hog is starved (this test fails on purpose)', 'failed'],
    ])
    const msg = results[1]!.failureMessages.join('\n')
    console.log(msg.split('\n').slice(0, 3).join('\n'))
    expect(msg).toMatch(/toHaveNoStarvation failed for run:\n {2}worker \d+ \(cgroup "starve", spin, policy idle\) (starved: 0 work units|stuck \d+ ms on cpu1 at \+\d+ ms)/)
    expect(msg).not.toContain('cgroup "hog"')
  })
})
