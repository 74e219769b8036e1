/**
 * One Vitest worker in one booted guest: a transport like Vitest's forks worker (v8-serialized
 * messages, here in Vitest frames on the guest channel) plus the VM lifecycle around it.
 *
 * The guest boots lazily, when Vitest sends `run`/`collect`: only then are the test files known,
 * and with them the `@ktstr` docblock that says what VM to boot. So `start()` returns at once and
 * Vitest's `start` is answered here; the real `start` goes to the guest once it is up, and its
 * `started` is consumed here. Boot time therefore never runs into Vitest's start timeouts (90 s,
 * 60 s); the guest's own wall-clock limit (the file timeout) bounds it instead.
 *
 * Whatever goes wrong with the guest (boot failure, scheduler failed or ejected, kernel panic,
 * timeout, channel corruption) becomes a failed test file carrying the cause and the last kernel
 * console lines, reported through the same RPC calls the guest would have made.
 */
import { EventEmitter } from 'node:events'
import v8 from 'node:v8'
import type { TestError } from 'vitest'
import type { PoolOptions, PoolTask, PoolWorker, WorkerRequest } from 'vitest/node'
import { parseHostFsRequest, parseVitestFrame, type HostFsRequest } from '../runtime/protocol/guest-schema.js'
import { MalformedMessage, StreamId, type GuestMessage } from '../runtime/protocol/index.js'
import { ENV_EXEC_ARGV, ENV_VITEST_DIST, isEnvelope } from '../runtime/protocol/vitest-envelope.js'
import { log } from '../src/util/log.js'
import { describeOutcome } from '../src/vm/outcome.js'
import type { GuestOutcome, GuestSession, VmRequest } from '../src/vm/session.js'
import type { ResourceGate } from './capacity.js'
import { failureFrom, ktstrError, outcomeFailure } from './failure.js'
import { guestEnv } from './guest-env.js'
import { serveHostFs, type SnapshotScope } from './host-fs.js'
import { RunTracker, type HostCall, type ProjectInfo } from './run-tracker.js'
import { watchSchedulerOf } from './scheduler-watch.js'
import { fileSpec, guestSize, sameSpec, type VmSpec } from './spec.js'

export const POOL_NAME = 'ktstr'

export type BootGuest = (req: VmRequest) => Promise<GuestSession>

/** What every worker of one pool shares. */
export interface WorkerSetup {
  boot: BootGuest
  defaults: VmSpec
  fixedTopology: boolean
  /** Admission by host CPUs and memory; undefined when the user chose maxWorkers. */
  gate(options: PoolOptions): ResourceGate | undefined
  /** Compiled runtime/vitest/worker.js, which the guest init imports. */
  workerEntry: string
  /** Compiled plugin/snapshot-environment.js. */
  snapshotEnvironment: string
  guestFiles(options: PoolOptions): string[]
}

/** Kernel console lines shown with a guest failure. */
const CONSOLE_LINES = 30
/** Vitest waits 60 s for `stopped`; answer well before that if the guest does not. */
const STOP_REPLY_MS = 30_000
const HOST_CALL_MS = 30_000

type Msg = Record<string, any>
interface Guest {
  session: GuestSession
  spec: VmSpec
  release: () => void
  outcome?: GuestOutcome
}
interface ActiveRun {
  request: Msg
  tracker: RunTracker
  forwarded: boolean
  finished: boolean
}

/** The wait was cut short by stop() or a cancelled run. */
class Interrupted extends Error {}
/** The guest went away while we waited for it. */
class GuestGone extends Error {
  constructor(readonly outcome: GuestOutcome) {
    super(describeOutcome(outcome))
  }
}

export class KtstrPoolWorker implements PoolWorker {
  readonly name = POOL_NAME
  readonly reportMemory = false
  /** Transformed code travels inline in `fetch` answers; the guest cannot read host temp files. */
  readonly cacheFs = false

  private readonly events = new EventEmitter()
  private readonly interrupt = new AbortController()
  private startRequest: Msg | undefined
  private guest: Guest | undefined
  /** Guest ↔ Vitest messages flow (the guest got `start` and nothing has failed). */
  private relaying = false
  private failure: TestError | undefined
  private run: ActiveRun | undefined
  private running: Promise<void> = Promise.resolve()
  private cancelled = false
  /** Vitest's onCancel event, kept to repeat it once the guest's test runner listens (see onGuestFrame). */
  private cancelEvent: Msg | undefined
  private closing = false
  private awaitingStopped = false
  private stopTimer: NodeJS.Timeout | undefined
  private guestStarted: ((error: unknown) => void) | undefined
  private readonly hostCalls = new Map<string, () => void>()
  private callSeq = 0

  constructor(
    private readonly options: PoolOptions,
    private readonly setup: WorkerSetup,
  ) {}

  on(event: string, callback: (arg: any) => void): void {
    this.events.on(event, callback)
  }

  off(event: string, callback: (arg: any) => void): void {
    this.events.off(event, callback)
  }

  deserialize(data: unknown): unknown {
    return data // decoded on arrival, so this worker can look at it
  }

  async start(): Promise<void> {
    if (this.options.project.config.experimental?.viteModuleRunner === false) {
      this.failure = ktstrError(
        'ktstr runs test files through Vite\'s module runner; remove `experimental.viteModuleRunner: false` from this project',
      )
    }
  }

  send(message: WorkerRequest): void {
    const msg = message as unknown as Msg
    if (msg.__vitest_worker_request__) return this.onRequest(msg)
    // birpc from the host: answers to the guest's calls (or to ours), and the onCancel event.
    if (msg.t === 's' && this.hostCalls.has(msg.i)) return this.hostCalls.get(msg.i)!()
    if (msg.t === 'q' && msg.m === 'onCancel') {
      this.cancelled = true
      this.cancelEvent = msg
      if (!this.run?.forwarded) this.interrupt.abort()
    }
    if (this.relaying) this.toGuest(msg)
  }

  async stop(): Promise<void> {
    this.closing = true
    this.interrupt.abort()
    for (const done of [...this.hostCalls.values()]) done()
    await this.running
    clearTimeout(this.stopTimer)
    const g = this.guest
    if (!g) return
    if (!g.outcome) {
      if (this.failure) g.session.kill()
      await g.session.stop()
    }
    g.release()
  }

  canReuse(task: PoolTask): boolean {
    const g = this.guest
    if (this.failure || !g || g.outcome) return false
    if (JSON.stringify(task.context.environment) !== JSON.stringify(this.options.environment)) return false
    try {
      return task.context.files.every((f) => sameSpec(fileSpec(this.setup.defaults, f.filepath, this.setup.fixedTopology), g.spec))
    } catch {
      return false
    }
  }

  private onRequest(msg: Msg): void {
    switch (msg.type) {
      case 'start':
        this.startRequest = msg
        setImmediate(() => this.emit({ __vitest_worker_response__: true, type: 'started' }))
        break
      case 'run':
      case 'collect':
        this.running = this.runFiles(msg)
        break
      case 'stop':
        this.awaitingStopped = true
        if (this.relaying) {
          this.stopTimer = setTimeout(() => {
            this.setFailure(ktstrError(`the guest did not answer Vitest's stop within ${STOP_REPLY_MS / 1000}s`))
            this.replyStopped()
          }, STOP_REPLY_MS)
          this.toGuest(msg)
        } else setImmediate(() => this.replyStopped())
        break
      default:
        if (this.relaying) this.toGuest(msg)
    }
  }

  private async runFiles(request: Msg): Promise<void> {
    const run: ActiveRun = { request, tracker: new RunTracker(), forwarded: false, finished: false }
    this.run = run
    const files = filepaths(request)
    try {
      if (!this.failure && !this.guest) await this.bootFor(files)
      else if (this.guest && !this.failure) this.specFor(files, this.guest.spec)
      if (this.failure) return await this.finishFailed(run)
      if (this.cancelled) return await this.finishCancelled(run)
      run.forwarded = true
      this.toGuest(request)
    } catch (e) {
      if (e instanceof Interrupted) {
        if (this.cancelled) await this.finishCancelled(run)
        return
      }
      this.setFailure(e instanceof GuestGone ? this.outcomeError(e.outcome) : failureFrom(e))
      await this.finishFailed(run)
    }
  }

  /** Boot a guest for these files and bring its Vitest worker to `started`. */
  private async bootFor(files: string[]): Promise<void> {
    const spec = this.specFor(files)
    watchSchedulerOf(this.options.project.vitest, spec, files)
    const gate = this.setup.gate(this.options)
    const signal = this.interrupt.signal
    const release = gate
      ? await gate.acquire(guestSize(spec), signal).catch((e: unknown) => {
          throw signal.aborted ? new Interrupted() : e
        })
      : () => {}
    if (signal.aborted) {
      release()
      throw new Interrupted()
    }
    let session: GuestSession
    try {
      session = await this.setup.boot(this.vmRequest(spec))
    } catch (e) {
      release()
      throw e
    }
    const guest: Guest = { session, spec, release: once(release) }
    this.guest = guest
    this.attach(guest)
    if (signal.aborted) throw new Interrupted()
    await this.until(guestReady(session), guest)
    const started = new Promise<unknown>((resolve) => (this.guestStarted = resolve))
    this.relaying = true
    this.toGuest(this.startMessage())
    const error = await this.until(started, guest)
    this.guestStarted = undefined
    if (error) throw error // Vitest's setup failed in the guest (e.g. its test environment); shown as is
  }

  /** The one spec all these files agree on; errors name the file. */
  private specFor(files: string[], current?: VmSpec): VmSpec {
    const specs = files.map((f) => fileSpec(this.setup.defaults, f, this.setup.fixedTopology))
    const spec = current ?? specs[0]!
    const odd = files.filter((_, i) => !sameSpec(specs[i]!, spec))
    if (odd.length > 0) {
      throw ktstrError(
        `${odd.join(', ')} need${odd.length === 1 ? 's' : ''} a different guest (@ktstr docblock) than the other files Vitest gave this worker; keep isolate: true for ktstr projects`,
      )
    }
    return spec
  }

  private vmRequest(spec: VmSpec): VmRequest {
    return {
      ...spec,
      mode: { kind: 'vitest', workerEntry: this.setup.workerEntry },
      env: {
        ...guestEnv(this.options.env),
        [ENV_VITEST_DIST]: this.options.distPath,
        [ENV_EXEC_ARGV]: JSON.stringify(this.options.execArgv),
      },
      cwd: this.options.project.config.root,
      extraImagePaths: this.setup.guestFiles(this.options),
    }
  }

  /** Vitest's `start`, with the host-backed snapshot environment unless the project set its own. */
  private startMessage(): Msg {
    const start = this.startRequest
    if (!start) throw new Error('Vitest sent run before start')
    const config = start.context.config
    if (config.snapshotEnvironment) return start
    return { ...start, context: { ...start.context, config: { ...config, snapshotEnvironment: this.setup.snapshotEnvironment } } }
  }

  private attach(guest: Guest): void {
    const { channel } = guest.session
    const { outputStream, errorStream } = this.options.project.vitest.logger
    channel.on('vitest', (payload) => this.onGuestFrame(payload, guest))
    channel.on('data', (stream, chunk) => {
      if (chunk.length === 0) return
      if (stream === StreamId.Stdout) outputStream.write(chunk)
      else if (stream === StreamId.Stderr) errorStream.write(chunk)
    })
    void guest.session.done.then((outcome) => this.onGuestGone(guest, outcome))
  }

  private onGuestFrame(payload: Buffer, guest: Guest): void {
    if (!this.relaying || this.guest !== guest) return
    let value: unknown
    try {
      value = v8.deserialize(payload)
    } catch (e) {
      return this.failFromGuest(`cannot decode a message from the guest (${(e as Error).message}); are host and guest node versions the same?`)
    }
    // The guest is not trusted: every frame is checked before anything here or in Vitest reads it.
    let msg: Msg
    try {
      if (isEnvelope(value)) return this.onHostFs(parseHostFsRequest(value))
      msg = parseVitestFrame(value)
    } catch (e) {
      if (e instanceof MalformedMessage) return this.failFromGuest(e.message)
      throw e
    }
    if (msg.__vitest_worker_response__) {
      if (msg.type === 'started' && this.guestStarted) return this.guestStarted(msg.error)
      if (msg.type === 'testfileFinished' && this.run) {
        this.run.finished = true
        this.run = undefined
      }
      if (msg.type === 'stopped') {
        if (!this.awaitingStopped) return
        this.awaitingStopped = false
        clearTimeout(this.stopTimer)
      }
    } else if (msg.t === 'q') {
      this.run?.tracker.observe(msg.m, msg.a)
      // The guest's runner subscribes to onCancel only after loading its setup; one sent while it
      // was still importing went nowhere. By onQueued it listens, so say it again.
      if (msg.m === 'onQueued' && this.cancelEvent) {
        this.toGuest(this.cancelEvent)
        this.cancelEvent = undefined
      }
    }
    this.emit(msg)
  }

  /** Snapshot file I/O for the files this guest runs now, and nothing else (host-fs.ts). */
  private onHostFs(req: HostFsRequest): void {
    const { project } = this.options
    const scope: SnapshotScope = {
      roots: [project.config.root, project.vitest.config.root],
      testFiles: this.run ? filepaths(this.run.request) : [],
      snapshotPath: (file) => project.vitest.snapshot.resolvePath(file, { config: project.serializedConfig }),
    }
    void serveHostFs(req, scope).then((reply) => this.toGuest(reply))
  }

  /** The guest misbehaved: its file fails with `message`, and the guest is stopped. */
  private failFromGuest(message: string): void {
    this.setFailure(ktstrError(message))
    if (this.run?.forwarded) void this.finishFailed(this.run)
  }

  private onGuestGone(guest: Guest, outcome: GuestOutcome): void {
    guest.outcome = outcome
    guest.release()
    if (this.guest !== guest) return
    this.relaying = false
    const clean = !this.run && (outcome.kind === 'stopped' || (outcome.kind === 'exited' && outcome.code === 0))
    log.debug(`ktstr pool: guest ended (${describeOutcome(outcome)})${clean ? '' : ' unexpectedly'}`)
    if (!clean) this.setFailure(this.outcomeError(outcome))
    // A run still booting learns of it from its own wait (GuestGone).
    if (this.run?.forwarded) void this.finishFailed(this.run)
    this.replyStopped()
  }

  private setFailure(error: TestError): void {
    this.failure ??= error
    this.relaying = false
    const g = this.guest
    if (g && !g.outcome) g.session.kill()
  }

  private async finishFailed(run: ActiveRun): Promise<void> {
    if (run.finished) return
    run.finished = true
    const calls = run.tracker.failureCalls(filepaths(run.request), this.failure!, this.projectInfo())
    for (const call of calls) await this.callHost(call)
    this.finishRun(run)
  }

  private async finishCancelled(run: ActiveRun): Promise<void> {
    if (run.finished) return
    run.finished = true
    for (const call of run.tracker.cancelCalls(filepaths(run.request), this.projectInfo())) await this.callHost(call)
    this.finishRun(run)
  }

  private finishRun(run: ActiveRun): void {
    if (this.run === run) this.run = undefined
    this.emit({ __vitest_worker_response__: true, type: 'testfileFinished' })
  }

  private replyStopped(): void {
    if (!this.awaitingStopped) return
    this.awaitingStopped = false
    clearTimeout(this.stopTimer)
    this.emit({ __vitest_worker_response__: true, type: 'stopped' })
  }

  /** Call one of Vitest's RPC methods as the guest would (through PoolRunner's birpc). */
  private callHost(call: HostCall): Promise<void> {
    const id = `ktstr:${++this.callSeq}`
    // Once Vitest stops this worker it no longer listens (a forced stop, e.g. a second Ctrl-C).
    if (this.closing) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.hostCalls.delete(id)
        resolve()
      }
      const timer = setTimeout(done, HOST_CALL_MS)
      this.hostCalls.set(id, done)
      this.emit({ t: 'q', i: id, m: call.method, a: call.args })
    })
  }

  private toGuest(msg: unknown): void {
    const g = this.guest
    if (!g || g.outcome) return
    g.session.channel.sendVitest(v8.serialize(msg))
  }

  private emit(msg: unknown): void {
    this.events.emit('message', msg)
  }

  /** Settles with `p`, or rejects once the guest is gone or the wait is interrupted. */
  private until<T>(p: Promise<T>, guest: Guest): Promise<T> {
    const signal = this.interrupt.signal
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new Interrupted())
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      void guest.session.done.then((o) => reject(new GuestGone(o)))
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  private outcomeError(outcome: GuestOutcome): TestError {
    return outcomeFailure(outcome, this.guest!.session.consoleTail(CONSOLE_LINES))
  }

  private projectInfo(): ProjectInfo {
    const { config } = this.options.project
    return { root: config.root, name: config.name || '', pool: POOL_NAME }
  }
}

function guestReady(session: GuestSession): Promise<void> {
  return new Promise((resolve) => {
    const onControl = (m: GuestMessage) => {
      if (m.kind !== 'phase' || m.phase !== 'vitest-ready') return
      session.channel.off('control', onControl)
      resolve()
    }
    session.channel.on('control', onControl)
  })
}

const filepaths = (request: Msg): string[] => (request.context.files as { filepath: string }[]).map((f) => f.filepath)

function once(fn: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    fn()
  }
}
