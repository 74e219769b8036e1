/**
 * Real Vitest (its CLI, as a user runs it) over a fixture project copied to a fresh folder, with
 * the JSON reporter for the counts. `*.sched.txt` fixtures become `*.sched.test.ts` in the copy.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { repoRoot } from './repo.js'

const VITEST = path.join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs')

export interface VitestRun {
  code: number | null
  out: string
  json: {
    numPassedTests: number
    numFailedTests: number
    testResults: { name: string; status: string; message: string; assertionResults: { title: string; status: string; failureMessages: string[] }[] }[]
  }
}

export interface FixtureProject {
  dir: string
  /** Each project's runs get their own TMPDIR, so the VMs they started can be told from others (strayQemus). */
  tmpdir: string
  /** `signal` SIGKILLs the run (its VMs die with it: QEMU has a parent-death signal); `env` adds to (or, undefined, removes from) its environment. */
  vitest(args: string[], files: string[], opts?: { signal?: AbortSignal; env?: Record<string, string | undefined> }): Promise<VitestRun>
  remove(): void
}

export function fixtureProject(fixture: string): FixtureProject {
  const tmpRoot = path.join(repoRoot, 'test', 'fixtures', '.tmp')
  fs.mkdirSync(tmpRoot, { recursive: true })
  const dir = fs.mkdtempSync(path.join(tmpRoot, `${path.basename(fixture)}-`))
  for (const f of fs.readdirSync(fixture)) fs.copyFileSync(path.join(fixture, f), path.join(dir, f.replace(/\.sched\.txt$/, '.sched.test.ts')))
  const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-pool-'))
  return {
    dir,
    tmpdir,
    vitest: (args, files, opts = {}) => {
      const jsonFile = path.join(dir, `report-${Date.now()}.json`)
      return new Promise((resolve) => {
        const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', TMPDIR: tmpdir }
        delete env.CI // CI mode refuses to write new snapshots; a first run must write them
        for (const [k, v] of Object.entries(opts.env ?? {})) v === undefined ? delete env[k] : (env[k] = v)
        const child = spawn(process.execPath, [VITEST, ...args, '--root', dir, '--reporter=default', '--reporter=json', `--outputFile.json=${jsonFile}`, ...files], {
          cwd: dir,
          env,
          signal: opts.signal,
          killSignal: 'SIGKILL',
        })
        child.on('error', () => {}) // an abort; 'close' follows
        let out = ''
        child.stdout.on('data', (b) => (out += b))
        child.stderr.on('data', (b) => (out += b))
        child.on('close', (code) => {
          const json = fs.existsSync(jsonFile) ? JSON.parse(fs.readFileSync(jsonFile, 'utf8')) : undefined
          resolve({ code, out, json })
        })
      })
    },
    remove: () => {
      fs.rmSync(dir, { recursive: true, force: true })
      fs.rmSync(tmpdir, { recursive: true, force: true })
    },
  }
}
