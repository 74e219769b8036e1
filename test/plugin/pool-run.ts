/**
 * Runs fixture projects with real Vitest (startVitest), the `ktstr` pool and fake guests: the real
 * guest session (src/vm/session-runner.ts) over a "VM" that is a child node process running the
 * compiled guest worker (fake-init.mjs, test/helpers/fake-vm.ts). Needs `npm run build` first: the
 * guest side runs from dist/.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { stripVTControlCharacters } from 'node:util'
import { type BootGuest, ktstr } from 'ktstr/plugin'
import type { UserConsoleLog } from 'vitest'
import type { JsonTestResults, Reporter } from 'vitest/node'
import { startVitest } from 'vitest/node'
import { DEFAULT_TIMEOUT_S } from '../../src/vm/defaults.js'
import { createRunDir } from '../../src/vm/run-dir.js'
import { startSession } from '../../src/vm/session-runner.js'
import type { VmRequest } from '../../src/vm/spec/request.js'
import { childVm } from '../helpers/fake-vm.js'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const FIXTURES = path.join(REPO, 'test', 'fixtures')
export const built = fs.existsSync(path.join(REPO, 'dist', 'runtime', 'vitest', 'worker.js'))
if (!built) console.warn('relay tests skipped: dist/ is missing; run `npm run build` (tsc) first')

const FAKE_INIT = fileURLToPath(new URL('./fake-init.mjs', import.meta.url))

export interface FakeGuests {
  boot: BootGuest
  requests: VmRequest[]
  /** "VMs" still running. */
  running(): number
}

/** A `boot` for the pool: bootGuest's session over a child process instead of a VM. */
export function fakeGuests(): FakeGuests {
  const requests: VmRequest[] = []
  let running = 0
  return {
    requests,
    running: () => running,
    async boot(req) {
      requests.push(req)
      const t0 = performance.now()
      const tmpDir = createRunDir()
      const spec = path.join(tmpDir, 'spec.json')
      fs.writeFileSync(spec, JSON.stringify({ ...req, extraImagePaths: undefined }))
      const socket = path.join(tmpDir, 'channel.sock')
      const vm = await childVm(FAKE_INIT, [socket, spec], socket)
      running++
      void vm.exited.then(() => running--)
      return startSession(vm, { t0, imageMs: 0, timeoutS: req.timeoutS ?? DEFAULT_TIMEOUT_S, tmpDir })
    },
  }
}

export interface RunResult {
  json: JsonTestResults
  unhandled: unknown[]
  logs: UserConsoleLog[]
  output: string
  guests: FakeGuests
  root: string
}

/** A scratch copy of a fixture project under test/fixtures/ (snapshots get written into it). */
export function copyFixture(fixture = 'pool'): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-relay-'))
  fs.cpSync(path.join(FIXTURES, fixture), root, { recursive: true })
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'))
  return root
}

/** Run the given fixture files with the ktstr pool (via `--pool=ktstr` and the plugin) and fake guests. */
export async function runFixture(files: string[], extra: Record<string, unknown> = {}, fixture = 'pool', prepare: (root: string) => void = () => {}): Promise<RunResult> {
  const root = copyFixture(fixture)
  prepare(root)
  const logs: UserConsoleLog[] = []
  let output = ''
  const collector: Reporter = { onUserConsoleLog: (log) => void logs.push(log) }
  const guests = fakeGuests()
  const outputFile = path.join(root, 'report.json')
  const stream = sink((text) => (output += text))
  const exitCode = process.exitCode
  const vitest = await startVitest(
    'test',
    files,
    {
      root,
      config: false,
      watch: false,
      include: ['*.sched.ts'],
      pool: 'ktstr',
      reporters: [['json', { outputFile }], ['default', {}], collector],
      update: 'new',
      ...extra,
    },
    { plugins: [ktstr({ boot: guests.boot, memory: 512 })], define: { __GUEST_DEFINE__: '{"n":1,"list":[1,null]}' } },
    { stdout: stream, stderr: stream },
  )
  process.exitCode = exitCode
  await vitest.close()
  output = stripVTControlCharacters(output)
  const json = JSON.parse(fs.readFileSync(outputFile, 'utf8')) as JsonTestResults
  return { json, unhandled: vitest.state.getUnhandledErrors(), logs, output, guests, root }
}

export function sink(onText: (text: string) => void = () => {}): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      onText(chunk.toString())
      cb()
    },
  })
}

export const byTitle = (r: RunResult, file: string) => Object.fromEntries(r.json.testResults.find((t) => t.name.endsWith(file))!.assertionResults.map((a) => [a.title, a]))
