/**
 * What a user installs is complete: the package as `npm pack` makes it (prepack empties dist/,
 * prepare rebuilds it), installed with vitest into a fresh project outside this repo, runs a sched
 * file of its own in a booted guest through `ktstr/plugin`, and `npx ktstr doctor` there passes.
 *
 * The pack runs in a copy of the working tree (its node_modules linked for tsc), because its
 * prepack/prepare scripts rebuild dist/ and the other suites import this checkout's dist/ meanwhile.
 */
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MIN_NODE } from '../../src/util/node-version.js'
import { repoRoot, testKernel } from '../helpers/repo.js'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-package-'))
const project = path.join(tmp, 'project')
/** npm run by `npm test` exports npm_* settings (prefix, lifecycle): the child npm must not inherit them. */
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
Object.assign(env, { NO_COLOR: '1', FORCE_COLOR: '0', TMPDIR: tmp }, testKernel ? { KTSTR_KERNEL: testKernel } : {})
delete env.CI

function sh(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b) => (out += b))
    child.stderr.on('data', (b) => (out += b))
    child.on('close', (code) => resolve({ code, out }))
  })
}

interface Packed {
  filename: string
  size: number
  entryCount: number
  files: { path: string }[]
}
let packed: Packed

describe('the packed package, installed into a fresh project', () => {
  beforeAll(async () => {
    const copy = path.join(tmp, 'checkout')
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot, encoding: 'utf8' })
    for (const f of files.split('\0').filter((f) => f && fs.existsSync(path.join(repoRoot, f)))) {
      fs.cpSync(path.join(repoRoot, f), path.join(copy, f), { recursive: true })
    }
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(copy, 'node_modules'))
    const pack = await sh('npm', ['pack', '--json', '--pack-destination', tmp], copy)
    expect(pack.code, pack.out).toBe(0)
    packed = JSON.parse(pack.out.slice(pack.out.indexOf('[')))[0]

    fs.mkdirSync(project)
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'my-scheduler-tests', private: true, type: 'module' }))
    for (const f of ['installed.sched.test.ts', 'vitest.config.mjs']) fs.copyFileSync(path.join(repoRoot, 'test', 'fixtures', 'installed', f), path.join(project, f))
    // The Vitest this repo tests with, from npm's cache when `npm ci` has put it there.
    const vitest = JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', 'vitest', 'package.json'), 'utf8')).version
    const install = await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp, packed.filename), `vitest@${vitest}`], project)
    expect(install.code, install.out).toBe(0)
  }, 240_000)
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

  it('holds the compiled code and the workload program, no source maps and no tests', () => {
    const paths = packed.files.map((f) => f.path)
    for (const p of [
      'dist/src/cli/bin.js',
      'dist/plugin/index.js',
      'dist/runtime/index.js',
      'dist/runtime/init/main.js',
      'dist/runtime/init/init.js',
      'dist/runtime/ktstr-workload',
    ]) {
      expect(paths).toContain(p)
    }
    expect(paths.filter((p) => p.endsWith('.map') || p.startsWith('test/') || !/^(dist|docs|runtime|src)\/|^(package\.json|README\.md)$/.test(p))).toEqual([])
    expect(fs.existsSync(path.join(project, 'node_modules', 'ktstr', 'dist', 'runtime', 'ktstr-workload'))).toBe(true)
  })

  it('`npx vitest run` boots a guest for the sched file and its test passes', { timeout: 300_000 }, async () => {
    const r = await sh('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', '--outputFile.json=report.json'], project)
    expect(r.code, r.out).toBe(0)
    const report = JSON.parse(fs.readFileSync(path.join(project, 'report.json'), 'utf8'))
    expect(report.testResults.map((t: { name: string }) => t.name)).toEqual([path.join(project, 'installed.sched.test.ts')])
    expect(report.numPassedTests).toBe(1)
    expect(report.numFailedTests).toBe(0)
  })

  it('`npx ktstr doctor` in that project finds everything', async () => {
    const r = await sh('npx', ['ktstr', 'doctor'], project)
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(new RegExp(`^✓ node +v\\S+ \\(ktstr needs >= ${MIN_NODE}\\)$`, 'm'))
    for (const check of ['qemu', 'busybox', 'build', 'koffi', 'kernel']) expect(r.out).toMatch(new RegExp(`^✓ ${check} `, 'm'))
    expect(r.out).toContain('✓ build      compiled runtime present')
  })
})
