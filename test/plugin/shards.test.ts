/**
 * The README's "CI at scale" flow on real guests: two machines' shards of a sched project
 * (`--shard=i/2 --reporter=blob`), then `--merge-reports` over their blob reports, with real
 * Vitest's CLI over test/fixtures/shard-project (two one-test sched files: one guest per shard).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'

let project: FixtureProject
let blobs = ''

const fileNames = (r: { json: { testResults: { name: string }[] } }) => r.json.testResults.map((t) => path.basename(t.name)).sort()

describe.skipIf(guestSkipReason)('sharded sched runs merged into one report', () => {
  beforeAll(() => {
    project = fixtureProject(path.join(repoRoot, 'test', 'fixtures', 'shard-project'))
    blobs = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-blobs-'))
  })
  afterAll(() => {
    project.remove()
    fs.rmSync(blobs, { recursive: true, force: true })
  })

  it('each shard boots a guest for its own file; --merge-reports shows both passed', { timeout: 300_000 }, async () => {
    // The helper adds the JSON reporter (with its own outputFile.json), so the blob's path is keyed too.
    const shard = (i: number) => project.vitest(['run', `--shard=${i}/2`, '--reporter=blob', `--outputFile.blob=${path.join(blobs, `blob-${i}-2.json`)}`], [])
    const one = await shard(1)
    expect(one.code, one.out).toBe(0)
    const two = await shard(2)
    expect(two.code, two.out).toBe(0)
    expect(one.out).toContain(`blob report written to ${path.join(blobs, 'blob-1-2.json')}`)
    expect(fs.readdirSync(blobs).sort()).toEqual(['blob-1-2.json', 'blob-2-2.json'])

    // One file per shard, different ones, together the whole project.
    expect(fileNames(one)).toHaveLength(1)
    expect(fileNames(two)).toHaveLength(1)
    expect([...fileNames(one), ...fileNames(two)].sort()).toEqual(['cpus.sched.test.ts', 'scheduler.sched.test.ts'])

    const merged = await project.vitest(['run', '--merge-reports', blobs], [])
    expect(merged.code, merged.out).toBe(0)
    expect(fileNames(merged)).toEqual(['cpus.sched.test.ts', 'scheduler.sched.test.ts'])
    expect(merged.json.testResults.map((t) => t.assertionResults.map((a) => [a.title, a.status])).sort()).toEqual([
      [['scx_simple is attached', 'passed']],
      [['two CPUs are online', 'passed']],
    ])
    expect(merged.json.numPassedTests).toBe(2)
    expect(merged.out).toMatch(/Test Files\s+2 passed \(2\)/)
    expect(strayQemus(project)).toEqual([])
  })
})
