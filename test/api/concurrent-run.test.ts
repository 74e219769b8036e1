/**
 * run() calls that overlap in one guest (test.concurrent) take turns: real Vitest over a fixture
 * project, one guest. Each report holds only its own workloads, their spans do not overlap, and a
 * timed-out test that passed its signal frees the guest for the run queued behind it.
 */
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildWorkload } from '../../runtime/workloads/build-workload.js'
import { guestSkipReason, repoRoot, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'concurrent')
let project: FixtureProject

describe.skipIf(guestSkipReason)('overlapping run() calls in one guest', () => {
  beforeAll(() => {
    buildWorkload(repoRoot)
    project = fixtureProject(FIXTURE)
  })
  afterAll(() => project.remove())

  it('serializes them: separate reports, spans in turn, the wait reported; an aborted run lets the next go', { timeout: 300_000 }, async () => {
    const r = await project.vitest(['run'], [])
    const results = r.json.testResults.flatMap((f) => f.assertionResults)
    expect(
      results.map((a) => [a.title, a.status]),
      r.out,
    ).toEqual([
      ['first', 'passed'],
      ['second', 'passed'],
      ['the two runs took turns', 'passed'],
      ['a test that times out hands the guest on', 'failed'],
      ['queued behind it', 'passed'],
      ['the queued run started once the timed-out one was stopped', 'passed'],
    ])
    expect(r.out).toContain('FAIL  overlap.sched.test.ts > a test that times out hands the guest on\nError: Test timed out in 3000ms.')
    expect(r.out).toContain('ktstr: run() waits for the run() before it in this guest to finish')
    console.log(
      r.out
        .split('\n')
        .filter((l) => /spans:|offCpuPct:|queued:|ktstr: run\(\)|timed out/.test(l))
        .join('\n'),
    )
    expect(r.code).toBe(1)
    expect(strayQemus(project)).toEqual([])
  })
})
