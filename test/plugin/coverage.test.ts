/**
 * `vitest run --coverage` over a project with a unit project and a sched project: V8 coverage taken
 * in the guest reaches Vitest's v8 provider on the host and merges with the unit project's.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'coverage')
let project: FixtureProject

interface FileCoverage {
  statementMap: Record<string, { start: { line: number } }>
  s: Record<string, number>
}

describe.skipIf(guestSkipReason)('coverage of a sched project', () => {
  beforeAll(() => {
    project = fixtureProject(FIXTURE)
  })
  afterAll(() => project.remove())

  it('counts the lines the guest ran beside those the unit project ran', { timeout: 300_000 }, async () => {
    const r = await project.vitest(['run', '--coverage'], [])
    expect(r.code, r.out).toBe(0)
    expect(r.json.numPassedTests).toBe(2)
    const final = JSON.parse(fs.readFileSync(path.join(project.dir, 'coverage', 'coverage-final.json'), 'utf8')) as Record<string, FileCoverage>
    const pick = final[path.join(project.dir, 'pick.ts')]!
    const hitsOnLine = (line: number) =>
      Object.entries(pick.statementMap)
        .filter(([, m]) => m.start.line === line)
        .map(([id]) => pick.s[id]!)
    // [if, return]: both calls test n > 0, the unit project's pick(1) returns there;
    // only the guest's pick(-1) reaches line 3; nobody calls pick(0).
    expect(hitsOnLine(2)).toEqual([2, 1])
    expect(hitsOnLine(3)).toEqual([1, 1])
    expect(hitsOnLine(4)).toEqual([0])
    expect(r.out).toMatch(/pick\.ts\s+\|\s+80\s+\|\s+75\s+\|\s+100\s+\|\s+66\.66\s+\|\s+4/)
    expect(strayQemus(project)).toEqual([])
  })
})
