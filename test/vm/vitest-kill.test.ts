/**
 * The Vitest main process killed (SIGKILL, SIGTERM, SIGINT) while its guest runs a test that spins
 * for ever in the guest's PID 1: the VM dies with it, within 5 s, and leaves no run folder.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot } from '../helpers/guest.js'
import { killAndCount, runDirs, waitFor } from '../helpers/host-death.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'

const VITEST = path.join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs')
const projects: FixtureProject[] = []
afterAll(() => projects.forEach((p) => p.remove()))

async function killVitestWhileSpinning(signal: NodeJS.Signals) {
  const project = fixtureProject(path.join(repoRoot, 'test', 'fixtures', 'spin'))
  projects.push(project)
  const env = { ...process.env, NO_COLOR: '1', TMPDIR: project.tmpdir }
  const child = spawn(process.execPath, [VITEST, 'run', '--root', project.dir], { cwd: project.dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b) => (out += b))
  child.stderr.on('data', (b) => (out += b))
  if (!(await waitFor(() => out.includes('spinning') || child.exitCode !== null, 90_000)) || child.exitCode !== null) {
    child.kill('SIGKILL')
    throw new Error(`the guest's test did not start spinning:\n${out}`)
  }
  // The test has just logged; give it the second it waits before it spins.
  await new Promise((r) => setTimeout(r, 1500))
  return { signal, ...(await killAndCount(child, signal, project.tmpdir)), foldersLater: runDirs(project.tmpdir) }
}

describe.skipIf(guestSkipReason)('Vitest killed while its guest spins', () => {
  it('SIGKILL, SIGTERM, SIGINT: no VM and no run folder within 5 s', { timeout: 150_000 }, async () => {
    const results = await Promise.all((['SIGKILL', 'SIGTERM', 'SIGINT'] as const).map(killVitestWhileSpinning))
    for (const r of results) {
      const what = JSON.stringify(r)
      expect(r.exit, what).not.toBeNull() // the host itself ended
      expect(r.qemus, what).toEqual([])
      expect(r.foldersLater, what).toEqual([])
    }
  })
})
