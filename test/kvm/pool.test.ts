/**
 * `vitest --pool=ktstr` with the kvm backend: a sched test file (docblock topology, scx_simple,
 * the test API) runs in a guest of our own VMM and reports through Vitest's reporters.
 */
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { repoRoot } from '../helpers/repo.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'
import { BOOT, skipReason } from './helpers.js'

describe.skipIf(skipReason)('vitest --pool=ktstr, backend kvm', () => {
  let project: FixtureProject
  beforeAll(() => {
    project = fixtureProject(path.join(repoRoot, 'test', 'fixtures', 'kvm'))
  })
  afterAll(() => project.remove())

  it('runs a sched test file in a guest of our VMM', { timeout: BOOT }, async () => {
    const r = await project.vitest(['run'], ['kvm-guest'])
    if (r.code !== 0) console.log(r.out.split('\n').slice(-80).join('\n'))
    expect(r.json.testResults.flatMap((f) => f.assertionResults.map((a) => [a.title, a.status]))).toEqual([
      ['scx_simple is attached on the requested topology', 'passed'],
      ['workloads in cgroups run under scx_simple and stay in their cpusets', 'passed'],
    ])
    expect(r.code).toBe(0)
  })
})
