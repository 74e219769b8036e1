/**
 * A user's sched file type-checks against the published types, the matchers merged into Vitest's
 * Assertion. (Their registration in the guest is exercised by pool.test.ts.)
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect, it } from 'vitest'
import { repoRoot } from '../helpers/repo.js'

const types = path.join(repoRoot, 'dist', 'runtime', 'index.d.ts')
it.skipIf(!fs.existsSync(types))('a sched test file type-checks with the matchers merged into Vitest’s Assertion', () => {
  const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc')
  const r = spawnSync(tsc, ['-p', path.join(import.meta.dirname, 'fixtures', 'tsconfig.json')], { encoding: 'utf8', cwd: repoRoot })
  expect(r.stdout + r.stderr).toBe('')
  expect(r.status).toBe(0)
})
