/**
 * Importing the package inside a Vitest worker registers its matchers on Vitest's `expect` (no
 * registerMatchers call here), and a user's sched file type-checks against the published types.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect, it } from 'vitest'
import { reportFromJSON } from '../../runtime/index.js'
import { repoRoot } from '../helpers/repo.js'

it('registers the matchers on import', () => {
  const r = reportFromJSON({
    version: 1,
    durationMs: 1000,
    topology: '1n1l2c1t (2 CPUs)',
    scheduler: { name: 'eevdf', kind: 'eevdf', attached: false, attachedAtStart: false },
    workers: [],
    cgroupCpusets: {},
    steps: [],
  })
  expect(r).not.toHaveNoStarvation() // no workers: nothing to vouch for
  expect(r).not.toKeepSchedulerAttached()
})

const types = path.join(repoRoot, 'dist', 'runtime', 'index.d.ts')
it.skipIf(!fs.existsSync(types))('a sched test file type-checks with the matchers merged into Vitest’s Assertion', () => {
  const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc')
  const r = spawnSync(tsc, ['-p', path.join(import.meta.dirname, 'fixtures', 'tsconfig.json')], { encoding: 'utf8', cwd: repoRoot })
  expect(r.stdout + r.stderr).toBe('')
  expect(r.status).toBe(0)
})
