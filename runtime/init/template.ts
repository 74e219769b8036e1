/**
 * The guest side of warm start. A template guest (booted without a run spec) is snapshotted by
 * the host once it reports `template-ready`; every guest restored from that snapshot resumes
 * here, waiting for its run: the per-run archive in Data frames on StreamId.RunArchive, then
 * `start`. The archive is unpacked into / (it holds the run spec), the wall clock — still the
 * template's — is set to the host's, the host's seed is mixed into the random pool (shared by
 * every restore of the snapshot), and the guest continues as a cold-booted one would.
 *
 * A guest restored ahead of its run (watch mode) may get `prime` first, after the archive of the
 * run before it: it keeps those bytes and rehearses again what the template rehearsed, unpacking
 * them in a scratch folder. A VMM restored from a snapshot has none of the template's work in its
 * caches (QEMU's TCG translates every guest instruction afresh), so the first pass over those paths
 * is slow; this way it is not the run's. A run whose archive is the same says `primed` and sends
 * none (~0.25 s under TCG for a scheduler and its libraries). When that archive's spec names a
 * scheduler, the guest then also unpacks it and starts the scheduler (attachAhead): the run that
 * claims it finds its scheduler attached.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { gunzipSync, gzipSync } from 'node:zlib'
import { CLOCK_REALTIME } from '../../native-shims/constants.js'
import { clockSettime } from '../../native-shims/libc.js'
import { decodeHostMessage, type GuestEndpoint, RUN_SPEC_PATH, type RunSpec, StreamId, TEMPLATE_SPEC_PATH, type TemplateSpec } from '../protocol/index.js'
import { runEnv } from './run-env.js'
import { say } from './say.js'
import { type StartResult, schedExtState, startScheduler } from './scheduler.js'
import { cpioFile, unpackCpio } from './unpack.js'

export function awaitRunArchive(endpoint: GuestEndpoint): Promise<void> {
  const chunks: Buffer[] = []
  let primed: Buffer | undefined
  let rehearsal = Promise.resolve()
  return new Promise<void>((resolve, reject) => {
    endpoint.on('data', (stream, chunk) => {
      if (stream === StreamId.RunArchive) chunks.push(Buffer.from(chunk))
    })
    endpoint.on('control', (msg) => {
      if (msg.kind === 'prime') {
        const archive = Buffer.concat(chunks)
        primed = archive
        chunks.length = 0
        setClockAndSeed(msg) // before a scheduler attached ahead starts
        rehearsal = rehearse(archive)
          .then(() => attachAhead(archive))
          .catch((e: unknown) => void say(`attach ahead: ${(e as Error).message}`))
        return
      }
      if (msg.kind !== 'start') return
      // A run saved while its guest still rehearses waits for the rehearsal to end (it runs
      // workloads), and for the scheduler attached ahead (up to its attach timeout).
      void rehearsal.then(() => {
        try {
          if (msg.primed && !primed) throw new Error('the host sent no archive: it said this guest was primed with one, but it was not')
          if (ahead && !msg.primed) throw new Error('this guest attached the scheduler of other files ahead; the host should not have claimed it')
          setClockAndSeed(msg)
          // Attached ahead: the run's files are in place already.
          if (!ahead) unpackCpio(gunzipSync(msg.primed ? primed! : Buffer.concat(chunks)))
          chunks.length = 0
          primed = undefined
          resolve()
        } catch (e) {
          reject(new Error(`warm start: ${(e as Error).message}`))
        }
      })
    })
  })
}

/** The host's wall clock (the guest's is still the template's); its seed mixed into the random pool (the same in every restore). */
function setClockAndSeed(msg: { epochMs: number; seed: string }): void {
  clockSettime(CLOCK_REALTIME, msg.epochMs)
  fs.writeFileSync('/dev/urandom', Buffer.from(msg.seed, 'hex'))
}

/** The scheduler a watch-mode standby started for its run (attachAhead), until the run takes it. */
let ahead: Promise<StartResult> | undefined

/**
 * Watch mode: when the primed archive's spec names a scheduler, unpack the archive and start the
 * scheduler now, while the guest waits for the save, as the run would first thing (an attach takes
 * ~0.5 s under TCG). The host claims this guest only for a run with the same archive (the same
 * scheduler, arguments and files: src/vm/warm/standby.ts), which then takes it (takeAheadScheduler).
 */
async function attachAhead(archive: Buffer): Promise<void> {
  let files: Buffer
  let spec: RunSpec
  try {
    files = gunzipSync(archive)
    const bytes = cpioFile(files, RUN_SPEC_PATH)
    if (!bytes) return
    spec = JSON.parse(bytes.toString('utf8')) as RunSpec
  } catch (e) {
    // The run unpacks the same archive, and reports what is wrong with it.
    say(`attach ahead: ${(e as Error).message}`)
    return
  }
  if (!spec.scheduler) return
  unpackCpio(files)
  ahead = startScheduler(spec.scheduler, spec.attachTimeoutMs).catch((e: unknown) => ({ ok: false as const, message: (e as Error).message }))
  await ahead
}

/**
 * The scheduler attached ahead of this run, once; undefined when none was. A failed attach ahead is
 * this run's failed start, saying so; one that has exited since, or that sched_ext ejected, too,
 * with its exit.
 */
export async function takeAheadScheduler(): Promise<StartResult | undefined> {
  const started = await ahead
  ahead = undefined
  if (!started) return undefined
  if (!started.ok) return { ...started, message: `${started.message} (watch mode started it ahead of the save)` }
  const sched = started.scheduler
  if (!sched.exited && schedExtState() === 'enabled') return started
  const what = sched.exited ? 'exited' : 'was ejected by sched_ext'
  await sched.stop(500)
  return {
    ok: false,
    message: `the scheduler ${what} while the guest waited for the run (watch mode attaches it ahead of the save)`,
    exit: await sched.settledExit(),
  }
}

/**
 * Run once by the template before its snapshot: what every restored run does first (the `start`
 * message decoded, an archive unpacked, the clock set, a child process with pipes as the run's
 * command gets) and what a sched test does most (the test API's run() of a short workload, a
 * check of its report, Vitest's expect) is then already compiled by V8 and its pages faulted in,
 * in the snapshot, instead of under each run's clock (TCG interprets every first time). Nothing it
 * does outlives it: the clock is set to what it reads, zeros mixed into the random pool add
 * nothing, the archive is empty, run() removes its cgroups and folder. The test API a Vitest
 * run's files import (natively, from this image: plugin/pool.ts runtimeModules) is loaded too;
 * importing it only defines things, so it stays as fresh.
 */
export async function warmUp(): Promise<void> {
  await testApi()
  await rehearse()
}

/** The test API (outside the init bundle: runtime/init/build-init.ts), the module instance the run's files import. */
const testApi = () => import('../index.js')

/**
 * A run's first steps and a short run(), with nothing to show for them: see warmUp (and `prime`).
 * `archive` is unpacked in a scratch folder. Never rejects.
 */
async function rehearse(archive: Buffer = sampleArchive()): Promise<void> {
  try {
    const start = decodeHostMessage(Buffer.from(JSON.stringify({ kind: 'start', epochMs: Date.now(), seed: '00'.repeat(32) })))
    if (start.kind === 'start') {
      setClockAndSeed(start)
      unpackCpio(gunzipSync(gzipSync(EMPTY_CPIO)))
    }
    // Unpacked where nothing looks, and removed: the paths a run's scheduler takes in.
    const scratch = fs.mkdtempSync('/ktstr/.rehearsal-')
    try {
      unpackCpio(gunzipSync(archive), scratch)
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true })
    }
    await new Promise<void>((resolve) => {
      const child = spawn('/ktstr/bin/true', [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
      child.stdout.resume()
      child.stderr.resume()
      child.on('error', () => resolve())
      child.on('close', () => resolve())
    })
    // Measured under TCG: a watched sched file's result came ~0.45 s sooner with this in the prime.
    const api = await testApi()
    const report = await api.run({ duration: '100ms', cgroups: [api.cgroup('rehearsal').workers(2, api.work.spin())] })
    api.matchers.toHaveNoStarvation.call({}, report)
    vitestExpect?.([{ cpus: '0' }]).toEqual([{ cpus: '0' }])
    vitestExpect?.('enabled').toBe('enabled')
  } catch (e) {
    // Only slower runs follow; the kernel console shows why should anything else fail.
    say(`rehearsal: ${(e as Error).message}`)
  }
}

type Expect = (value: unknown) => { toBe(expected: unknown): void; toEqual(expected: unknown): void }
/** Vitest's expect, once the template loaded Vitest's worker: a rehearsal asserts with it (its state is reset per test). */
let vitestExpect: Expect | undefined

/**
 * What the host asked this template to load (TEMPLATE_SPEC_PATH; nothing when absent): Vitest's
 * worker modules, imported exactly as a run with that environment and folder imports them. The
 * environment stays set: every run restored from this snapshot sets the same (it is in the key).
 * A failed import leaves it to the runs, which meet the same error in their own report.
 */
export async function preloadTemplate(): Promise<void> {
  if (!fs.existsSync(TEMPLATE_SPEC_PATH)) return
  const spec = JSON.parse(fs.readFileSync(TEMPLATE_SPEC_PATH, 'utf8')) as TemplateSpec
  if (!spec.vitest) return
  const { workerEntry, env, cwd } = spec.vitest
  type VitestWorker = { importVitest(o: { env: Record<string, string>; cwd: string }): Promise<{ expect: unknown }> }
  try {
    const worker = (await import(workerEntry)) as VitestWorker
    const { expect } = await worker.importVitest({ env: runEnv(env), cwd: fs.existsSync(cwd) ? cwd : '/' })
    vitestExpect = expect as Expect
  } catch (e) {
    say(`the template could not load Vitest's worker: ${(e as Error).message}`)
  }
}

/** One newc entry: the magic, 13 hex fields (mode is field 1, size 6, namesize 11), name and data padded to 4 bytes. */
function cpioEntry(name: string, mode: number, data: Buffer): Buffer {
  const fields = Array.from({ length: 13 }, (_, i) => (i === 1 ? mode : i === 6 ? data.length : i === 11 ? name.length + 1 : 0).toString(16).padStart(8, '0'))
  const head = Buffer.from(`070701${fields.join('')}${name}\0`, 'latin1')
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4)
  return Buffer.concat([head, pad(head.length), data, pad(data.length)])
}

/** A newc archive of its trailer alone. */
const EMPTY_CPIO = cpioEntry('TRAILER!!!', 0, Buffer.alloc(0))
/** What the template rehearses with, gzip'd as a run's archive: a folder and a file the size of a small scheduler. */
const sampleArchive = () => gzipSync(Buffer.concat([cpioEntry('dir', 0o040755, Buffer.alloc(0)), cpioEntry('dir/file', 0o100755, Buffer.alloc(256 << 10)), EMPTY_CPIO]))
