/**
 * One Vitest worker in one booted guest: a transport like Vitest's forks worker (v8-serialized
 * messages, here in Vitest frames on the guest channel: worker-transport.ts) plus the VM lifecycle
 * around it.
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
import type { HostFsRequest } from '../runtime/protocol/guest-schema.js'
import { ENV_INSPECTOR } from '../runtime/protocol/relay.js'
import { ENV_EXEC_ARGV, ENV_VITEST_DIST } from '../runtime/protocol/vitest-envelope.js'
import { defaultDumpDir } from '../src/monitor/dump-file.js'
import { log } from '../src/util/log.js'
import { MAX_TIMEOUT_S } from '../src/vm/defaults.js'
import { describeOutcome } from '../src/vm/outcome.js'
import type { GuestOutcome, GuestSession } from '../src/vm/session.js'
import type { VmRequest, VmSpec } from '../src/vm/spec/request.js'
import type { ResourceGate } from './capacity.js'
import { failureFrom, ktstrError, outcomeFailure } from './failure.js'
import { guestEnv } from './guest-env.js'
import { type SnapshotScope, serveHostFs } from './host-fs.js'
import { guestInspectorConfig, InspectorRelay, inspectorSetting } from './inspector.js'
import { MonitorHost } from './monitor-host.js'
import { type HostCall, RunTracker } from './run-tracker.js'
import { watchSchedulerOf } from './scheduler-watch.js'
import { fileSpec, guestSize, sameSpec } from './spec.js'
import { decodeGuestFrame, type FromGuest, type FromVitest, guestReady, pipeGuestOutput, type RpcMessage } from './worker-transport.js'

export const POOL_NAME = 'ktstr'

/** Boots a guest; `standby` (watch mode): keep one of its shape restored for the next run (src/vm/warm/standby.ts). */
export type BootGuest = (req: VmRequest, opts?: { standby?: boolean }) => Promise<GuestSession>

/** What every worker of one pool shares. */
export interface WorkerSetup {
  boot: BootGuest
  defaults: VmSpec
  fixedTopology: boolean
  /** Admission by host CPUs and memory; undefined when the user chose maxWorkers. */
  gate(options: PoolOptions): ResourceGate | undefined
  /** Compiled runtime/vitest/worker.js, which the guest init imports. */
  workerEntry: string
  /** Compiled runtime/vitest/snapshot-environment.js. */
  snapshotEnvironment: string
  guestFiles(options: PoolOptions): string[]
}

/** Kernel console lines shown with a guest failure. */
const CONSOLE_LINES = 30
/** Vitest waits 60 s for `stopped`; answer well before that if the guest does not. */
const STOP_REPLY_MS = 30_000
const HOST_CALL_MS = 30_000

/**
 * The worker's lifecycle, changed only by `enter()` along NEXT:
 * idle → booting → starting → relaying → ended (the guest stopped cleanly between files);
 * failed from any of them, and final: the first cause is the one the file reports.
 */
type Lifecycle =
  | { is: 'idle' } // Vitest's `start` was answered here; no guest until a run names its files
  | { is: 'booting' } // admission, the VM, the guest's init readying its Vitest worker
  | { is: 'starting'; started: (error: unknown) => void } // the guest got Vitest's `start`; frames flow
  | { is: 'relaying' } // frames flow both ways
  | { is: 'ended' }
  | { is: 'failed'; error: TestError } // the file fails with `error`; the guest is killed
const NEXT: Record<Lifecycle['is'], Lifecycle['is'][]> = {
  idle: ['booting', 'failed'],
  booting: ['starting', 'failed', 'ended'],
  starting: ['relaying', 'failed', 'ended'],
  relaying: ['failed', 'ended'],
  ended: ['failed'],
  failed: [],
}

interface Guest {
  session: GuestSession
  spec: VmSpec
  release: () => void
  outcome?: GuestOutcome
  /** Serves the file's monitor/bpf API; writes failure dumps. */
  monitor: MonitorHost
}
interface ActiveRun {
  files: string[]
  tracker: RunTracker
  /** waiting: for the guest (or to fail or cancel without it); forwarded: the guest runs it. */
  stage: 'waiting' | 'forwarded' | 'finished'
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
  /** Transformed code travels inline in `fetch` answers; the guest cannot read host temp files. */
  readonly cacheFs = false

  private state: Lifecycle = { is: 'idle' }
  private readonly events = new EventEmitter()
  /** Our RPC calls to Vitest awaiting its answer; undefined once Vitest no longer listens (stop()). */
  private hostCalls: Map<string, () => void> | undefined = new Map()
  private callSeq = 0
  private readonly interrupt = new AbortController()
  private startRequest: Extract<WorkerRequest, { type: 'start' }> | undefined
  /** The one guest this worker boots, once it has. */
  private guest: Guest | undefined
  private run: ActiveRun | undefined
  private running: Promise<void> = Promise.resolve()
  /** Vitest cancelled the run; its onCancel event is kept to repeat it once the guest's runner listens (see onGuestFrame). */
  private cancel: { event?: RpcMessage } | undefined
  /** Vitest asked the worker to stop and waits for `stopped`. */
  private stopRequest: { timer?: NodeJS.Timeout } | undefined
  /** `--inspect`/`--inspect-brk`: the host end of the debugger's connections (inspector.ts). */
  private inspector: InspectorRelay | undefined

  constructor(
    private readonly options: PoolOptions,
    private readonly setup: WorkerSetup,
  ) {}

  // biome-ignore lint/suspicious/noExplicitAny: Vitest's PoolWorker interface types these callbacks with any
  on(event: string, callback: (arg: any) => void): void {
    this.events.on(event, callback)
  }

  // biome-ignore lint/suspicious/noExplicitAny: Vitest's PoolWorker interface types these callbacks with any
  off(event: string, callback: (arg: any) => void): void {
    this.events.off(event, callback)
  }

  deserialize(data: unknown): unknown {
    return data // decoded on arrival, so this worker can look at it
  }

  async start(): Promise<void> {
    if (this.options.project.config.experimental?.viteModuleRunner === false) {
      this.enter({
        is: 'failed',
        error: ktstrError("ktstr runs test files through Vite's module runner; remove `experimental.viteModuleRunner: false` from this project"),
      })
    }
  }

  send(message: WorkerRequest): void {
    const msg = message as FromVitest // PoolRunner's birpc sends its messages here too
    if ('__vitest_worker_request__' in msg) return this.onRequest(msg)
    // birpc from the host: answers to the guest's calls (or to ours), and the onCancel event.
    if (msg.t === 's' && this.hostCalls?.has(msg.i)) return this.hostCalls.get(msg.i)!()
    if (msg.t === 'q' && msg.m === 'onCancel') {
      this.cancel = { event: msg }
      if (!this.run || this.run.stage === 'waiting') this.interrupt.abort() // a run still waiting for its guest
    }
    if (this.relaying) this.toGuest(msg)
  }

  async stop(): Promise<void> {
    for (const done of [...(this.hostCalls?.values() ?? [])]) done()
    this.hostCalls = undefined // a forced stop (e.g. a second Ctrl-C): Vitest no longer answers
    this.interrupt.abort()
    await this.running
    clearTimeout(this.stopRequest?.timer)
    this.inspector?.close()
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

  /** The one place the lifecycle changes; a transition NEXT does not list is ignored. */
  private enter(next: Lifecycle): void {
    if (!NEXT[this.state.is].includes(next.is)) return
    this.state = next
    const g = this.guest
    if (next.is === 'failed' && g && !g.outcome) g.session.kill()
  }

  private get failure(): TestError | undefined {
    return this.state.is === 'failed' ? this.state.error : undefined
  }

  /** Guest ↔ Vitest messages flow (the guest got `start` and nothing has failed). */
  private get relaying(): boolean {
    return this.state.is === 'starting' || this.state.is === 'relaying'
  }

  private onRequest(msg: WorkerRequest): void {
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
        this.stopRequest = {}
        if (!this.relaying) return void setImmediate(() => this.replyStopped())
        this.stopRequest.timer = setTimeout(() => {
          this.enter({ is: 'failed', error: ktstrError(`the guest did not answer Vitest's stop within ${STOP_REPLY_MS / 1000}s`) })
          this.replyStopped()
        }, STOP_REPLY_MS)
        this.toGuest(msg)
        break
      default:
        if (this.relaying) this.toGuest(msg)
    }
  }

  private async runFiles(request: Extract<WorkerRequest, { type: 'run' | 'collect' }>): Promise<void> {
    const { config } = this.options.project
    const tracker = new RunTracker({ root: config.root, name: config.name || '', pool: POOL_NAME })
    const run: ActiveRun = { files: request.context.files.map((f) => f.filepath), tracker, stage: 'waiting' }
    this.run = run
    try {
      if (this.state.is === 'idle') await this.bootFor(run.files)
      else if (this.guest && !this.failure) this.specFor(run.files, this.guest.spec)
      if (this.failure) return await this.finish(run, 'failed')
      if (this.cancel) return await this.finish(run, 'cancelled')
      run.stage = 'forwarded'
      this.toGuest(request)
    } catch (e) {
      if (e instanceof Interrupted) {
        if (this.cancel) await this.finish(run, 'cancelled')
        return
      }
      this.enter({ is: 'failed', error: e instanceof GuestGone ? this.outcomeError(e.outcome) : failureFrom(e) })
      await this.finish(run, 'failed')
    }
  }

  /** Boot a guest for these files and bring its Vitest worker to `started`. */
  private async bootFor(files: string[]): Promise<void> {
    const spec = this.specFor(files)
    this.enter({ is: 'booting' })
    const inspect = inspectorSetting(this.options.project.vitest.config)
    if (inspect) this.inspector = await InspectorRelay.listen(inspect) // before booting: a taken port fails at once
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
      session = await this.setup.boot(this.vmRequest(spec), { standby: this.options.project.vitest.config.watch })
    } catch (e) {
      release()
      this.inspector?.close()
      throw e
    }
    const guest: Guest = { session, spec, release, monitor: new MonitorHost(session, defaultDumpDir(this.options.project.config.root), spec.backend ?? 'auto') }
    this.guest = guest
    this.attach(guest)
    if (signal.aborted) throw new Interrupted()
    await this.until(guestReady(session), guest)
    // Only now does the guest serve relayed connections (its init drops them until Vitest's worker is
    // up): a debugger that connected while the guest booted waits in the relay until here.
    this.inspector?.attach(session.channel)
    const started = new Promise<unknown>((resolve) => this.enter({ is: 'starting', started: resolve }))
    this.toGuest(this.startMessage())
    const error = await this.until(started, guest)
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
        ...(this.inspector ? { [ENV_INSPECTOR]: '1' } : {}),
      },
      cwd: this.options.project.config.root,
      extraImagePaths: this.setup.guestFiles(this.options),
      // A debugger may hold the file at a breakpoint for as long as it likes.
      ...(this.inspector ? { timeoutS: MAX_TIMEOUT_S } : {}),
    }
  }

  /** Vitest's `start`, with the host-backed snapshot environment unless the project set its own. */
  private startMessage(): WorkerRequest {
    const start = this.startRequest
    if (!start) throw new Error('Vitest sent run before start')
    const config = guestInspectorConfig(start.context.config)
    const snapshotEnvironment = config.snapshotEnvironment || this.setup.snapshotEnvironment
    return { ...start, context: { ...start.context, config: { ...config, snapshotEnvironment } } }
  }

  private attach(guest: Guest): void {
    pipeGuestOutput(guest.session, this.options.project.vitest.logger)
    guest.session.channel.on('vitest', (payload) => {
      if (!this.relaying) return
      const frame = decodeGuestFrame(payload)
      if ('refused' in frame) this.failFromGuest(frame.refused)
      else if ('hostFs' in frame) this.onHostFs(frame.hostFs)
      else if ('monitor' in frame) void guest.monitor.serve(frame.monitor).then((reply) => this.toGuest(reply))
      else this.onGuestFrame(frame.vitest)
    })
    void guest.session.done.then((outcome) => this.onGuestGone(guest, outcome))
  }

  private onGuestFrame(msg: FromGuest): void {
    if ('__vitest_worker_response__' in msg) {
      if (msg.type === 'started' && this.state.is === 'starting') {
        const { started } = this.state
        this.enter({ is: 'relaying' })
        return started(msg.error)
      }
      if (msg.type === 'testfileFinished' && this.run) {
        this.run.stage = 'finished'
        this.run = undefined
      }
      if (msg.type === 'stopped') return this.replyStopped(msg)
    } else if (msg.t === 'q') {
      this.run?.tracker.observe(msg.m, msg.a)
      if (msg.m === 'onTaskUpdate') this.guest?.monitor.annotateFailures(msg.a, this.run?.files[0])
      // The guest's runner subscribes to onCancel only after loading its setup; one sent while it
      // was still importing went nowhere. By onQueued it listens, so say it again.
      if (msg.m === 'onQueued' && this.cancel?.event) {
        this.toGuest(this.cancel.event)
        this.cancel.event = undefined
      }
    }
    this.emit(msg)
  }

  /** Snapshot file I/O for the files this guest runs now, and nothing else (host-fs.ts). */
  private onHostFs(req: HostFsRequest): void {
    const { project } = this.options
    const scope: SnapshotScope = {
      roots: [project.config.root, project.vitest.config.root],
      testFiles: this.run?.files ?? [],
      snapshotPath: (file) => project.vitest.snapshot.resolvePath(file, { config: project.serializedConfig }),
    }
    void serveHostFs(req, scope).then((reply) => this.toGuest(reply))
  }

  /** The guest misbehaved: its file fails with `message`, and the guest is stopped. */
  private failFromGuest(message: string): void {
    this.enter({ is: 'failed', error: ktstrError(message) })
    if (this.run?.stage === 'forwarded') void this.finish(this.run, 'failed')
  }

  private onGuestGone(guest: Guest, outcome: GuestOutcome): void {
    guest.outcome = outcome
    guest.release()
    this.inspector?.close()
    const clean = !this.run && (outcome.kind === 'stopped' || (outcome.kind === 'exited' && outcome.code === 0))
    log.debug(`ktstr pool: guest ended (${describeOutcome(outcome)})${clean ? '' : ' unexpectedly'}`)
    this.enter(clean ? { is: 'ended' } : { is: 'failed', error: this.outcomeError(outcome) })
    // A run still booting learns of it from its own wait (GuestGone).
    if (this.run?.stage === 'forwarded') void this.finish(this.run, 'failed')
    this.replyStopped()
  }

  /** Report the run's files as failed (with the failure) or as cancelled, as the guest would have. */
  private async finish(run: ActiveRun, how: 'failed' | 'cancelled'): Promise<void> {
    if (run.stage === 'finished') return
    run.stage = 'finished'
    const { tracker, files } = run
    const calls = how === 'failed' ? tracker.failureCalls(files, this.failure!) : tracker.cancelCalls(files)
    for (const call of calls) await this.callHost(call)
    if (this.run === run) this.run = undefined
    this.emit({ __vitest_worker_response__: true, type: 'testfileFinished' })
  }

  /** Answer Vitest's stop (with the guest's own answer when it gave one); nothing if none is pending. */
  private replyStopped(answer: FromGuest = { __vitest_worker_response__: true, type: 'stopped' }): void {
    if (!this.stopRequest) return
    clearTimeout(this.stopRequest.timer)
    this.stopRequest = undefined
    this.emit(answer)
  }

  /** Call one of Vitest's RPC methods as the guest would (through PoolRunner's birpc). */
  private callHost(call: HostCall): Promise<void> {
    const calls = this.hostCalls
    if (!calls) return Promise.resolve()
    const id = `ktstr:${++this.callSeq}`
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        calls.delete(id)
        resolve()
      }
      const timer = setTimeout(done, HOST_CALL_MS)
      calls.set(id, done)
      this.emit({ t: 'q', i: id, m: call.method, a: call.args })
    })
  }

  private emit(msg: FromGuest): void {
    this.events.emit('message', msg)
  }

  private toGuest(msg: unknown): void {
    const g = this.guest
    if (g && !g.outcome) g.session.channel.sendVitest(v8.serialize(msg))
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
    const error = outcomeFailure(outcome, this.guest!.session.consoleTail(CONSOLE_LINES))
    return this.guest!.monitor.annotateFile(error, this.run?.files[0])
  }
}
