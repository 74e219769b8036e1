/**
 * The guest side of the Vitest pool: Vitest's own worker runtime (`vitest/worker` init) on the
 * channel. Its messages and birpc calls travel v8-serialized in Vitest frames, as the forks pool's
 * do over its IPC fd (`serialization: 'advanced'` is the same V8 serializer, so RegExp filters and
 * `undefined` values survive unchanged). The guest init imports this file for mode `vitest` and
 * awaits `runVitestWorker`; it resolves after Vitest's `stop`, or when the host closes the channel.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import v8 from 'node:v8'
import type { runBaseTests, setupEnvironment, init as vitestInit } from 'vitest/worker'
import { type Extendable, registerMatchers } from '../api/matchers.js'
import { type GuestEndpoint, RUN_SPEC_PATH, type RunSpec, StreamId } from '../protocol/index.js'
import { ENV_EXEC_ARGV, ENV_VITEST_DIST, ENVELOPE_MARK, HOST_FS_KEY, type HostFsBridge, type HostFsOp, type HostFsReply, isEnvelope } from '../protocol/vitest-envelope.js'
import { installMonitorBridge } from './monitor-bridge.js'

interface VitestWorkerModule {
  init: typeof vitestInit
  runBaseTests: typeof runBaseTests
  setupEnvironment: typeof setupEnvironment
}
type Listener = (msg: unknown) => void

export interface RunVitestWorkerOptions {
  /** The environment Vitest gave the worker (RunSpec.env); read from the run spec when omitted. */
  env?: Record<string, string>
  cwd?: string
}

/**
 * Vitest's worker modules, imported with the run's environment and folder in place (its env must
 * be set first: VITEST, NODE_ENV, colours). A warm-start template calls this with the environment
 * its runs will have (runtime/init/template.ts): a restored run then finds the modules loaded.
 */
export async function importVitest(options: RunVitestWorkerOptions = {}): Promise<{ vitest: VitestWorkerModule; expect: Extendable }> {
  applyEnvironment(options)
  const dist = takeEnv(ENV_VITEST_DIST)
  loadRequires(takeEnv(ENV_EXEC_ARGV))
  // The host's Vitest, at the same path in the guest image: one module instance for runtime and tests.
  const vitest = (await import(dist ? pathToFileURL(path.join(dist, 'worker.js')).href : 'vitest/worker')) as VitestWorkerModule
  const index = (await import(dist ? pathToFileURL(path.join(dist, 'index.js')).href : 'vitest')) as { expect: Extendable }
  // ktstr's snapshot environment, loaded here once (a template has it): each file's run is handed it
  // (presetSnapshotEnvironment), so no restored run pays for it.
  snapshotEnvironment = ((await import('./snapshot-environment.js')) as { default: SnapshotEnvironment }).default
  return { vitest, expect: index.expect }
}

type SerializedConfig = Parameters<typeof runBaseTests>[1]['config']
type SnapshotEnvironment = SerializedConfig['snapshotOptions']['snapshotEnvironment']
let snapshotEnvironment: SnapshotEnvironment | undefined
const SNAPSHOT_ENVIRONMENT_PATH = fileURLToPath(new URL('./snapshot-environment.js', import.meta.url))

/**
 * When the project's snapshot environment is ktstr's, give Vitest the loaded instance: what its
 * module runner would import (resolveSnapshotEnvironment: the module's default export, the same
 * instance), without the two host round trips that costs each file (~0.05–0.1 s under TCG).
 */
function presetSnapshotEnvironment(config: SerializedConfig): void {
  if (!snapshotEnvironment || config.snapshotOptions.snapshotEnvironment) return
  if (config.snapshotEnvironment && path.resolve(config.snapshotEnvironment) === SNAPSHOT_ENVIRONMENT_PATH) {
    config.snapshotOptions.snapshotEnvironment = snapshotEnvironment
  }
}

export async function runVitestWorker(endpoint: GuestEndpoint, options: RunVitestWorkerOptions = {}): Promise<void> {
  const { vitest, expect } = await importVitest(options)
  // ktstr's matchers on the `expect` every test file imports (Vitest's index, the same module instance).
  registerMatchers(expect)

  const listeners = new Set<Listener>()
  const fsCalls = new Map<number, (reply: HostFsReply) => void>()
  const monitorBridge = installMonitorBridge(endpoint)
  let finish!: () => void
  const finished = new Promise<void>((resolve) => (finish = resolve))

  const onFrame = (payload: Buffer) => {
    let msg: unknown
    try {
      msg = v8.deserialize(payload)
    } catch (e) {
      // A V8 wire format the guest's node cannot read: host and guest node versions differ too much.
      endpoint.sendData(StreamId.Stderr, Buffer.from(`ktstr: cannot decode a Vitest message: ${(e as Error).message}\n`))
      return
    }
    if (isEnvelope(msg)) {
      if (monitorBridge.onReply(msg)) return
      if (msg[ENVELOPE_MARK] === 'fs-reply') fsCalls.get(msg.id)?.(msg)
      return
    }
    for (const l of [...listeners]) l(msg)
  }
  endpoint.on('vitest', onFrame)
  endpoint.on('close', finish)

  let nextId = 0
  const hostFs = (op: HostFsOp) =>
    new Promise<string | null>((resolve, reject) => {
      const id = ++nextId
      fsCalls.set(id, (reply) => {
        fsCalls.delete(id)
        if (reply.ok) resolve(reply.value)
        else reject(new Error(reply.message))
      })
      if (!endpoint.sendVitest(v8.serialize({ [ENVELOPE_MARK]: 'fs', id, ...op }))) {
        fsCalls.delete(id)
        reject(new Error(`ktstr: the host channel is closed; cannot ${op.op} ${op.path}`))
      }
    })
  const bridge: HostFsBridge = {
    read: (p) => hostFs({ op: 'read', path: p }),
    write: async (p, content) => void (await hostFs({ op: 'write', path: p, content })),
    remove: async (p) => void (await hostFs({ op: 'remove', path: p })),
  }
  const globals = globalThis as Record<symbol, unknown>
  globals[HOST_FS_KEY] = bridge

  const restoreStdio = captureStdio(endpoint)
  const restoreHandlers = yieldErrorHandlers()
  const processExit = process.exit
  type RunArgs = Parameters<typeof runBaseTests>
  const execute = async (method: RunArgs[0], state: RunArgs[1], traces: RunArgs[2]) => {
    try {
      presetSnapshotEnvironment(state.config)
      await vitest.runBaseTests(method, state, traces)
    } finally {
      process.exit = processExit // Vitest makes process.exit throw while tests run
    }
  }
  try {
    vitest.init({
      post: (msg) => void endpoint.sendVitest(v8.serialize(msg)),
      on: (fn) => void listeners.add(fn as Listener),
      off: (fn) => void listeners.delete(fn as Listener),
      runTests: (state, traces) => execute('run', state, traces),
      collectTests: (state, traces) => execute('collect', state, traces),
      setup: vitest.setupEnvironment,
      teardown: () => {
        listeners.clear()
        finish()
      },
    })
    endpoint.sendControl({ kind: 'phase', phase: 'vitest-ready', uptimeMs: uptimeMs() })
    await finished
    await endpoint.flush()
  } finally {
    endpoint.off('vitest', onFrame)
    endpoint.off('close', finish)
    for (const settle of fsCalls.values()) settle({ [ENVELOPE_MARK]: 'fs-reply', id: 0, ok: false, message: 'ktstr: worker stopped' })
    delete globals[HOST_FS_KEY]
    monitorBridge.close()
    process.exit = processExit
    restoreHandlers()
    restoreStdio()
  }
}

/** Vitest's env (VITEST, NODE_ENV, config env ...) must be in place before vitest/worker is imported. */
function applyEnvironment(options: RunVitestWorkerOptions): void {
  let { env, cwd } = options
  if (!env && fs.existsSync(RUN_SPEC_PATH)) {
    const spec = JSON.parse(fs.readFileSync(RUN_SPEC_PATH, 'utf8')) as RunSpec
    env = spec.env
    cwd ??= spec.cwd
  }
  if (env) Object.assign(process.env, env)
  if (cwd && fs.existsSync(cwd)) process.chdir(cwd)
}

function takeEnv(name: string): string | undefined {
  const v = process.env[name]
  delete process.env[name]
  return v || undefined
}

/** Vitest's worker command line carries `--require <file>` (its warning filter); load those here. */
function loadRequires(execArgvJson: string | undefined): void {
  if (!execArgvJson) return
  const argv = JSON.parse(execArgvJson) as string[]
  const require = createRequire(import.meta.url)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const file = a === '--require' || a === '-r' ? argv[++i] : a.startsWith('--require=') ? a.slice(10) : undefined
    if (file && path.isAbsolute(file) && fs.existsSync(file)) require(file)
  }
}

/** Raw writes to stdout/stderr (a test's process.stdout.write) go to the host as Data frames. */
function captureStdio(endpoint: GuestEndpoint): () => void {
  const saved = [process.stdout.write, process.stderr.write] as const
  const wrap = (stream: number) =>
    function write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
      const done = typeof encoding === 'function' ? encoding : cb
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array)
      if (buf.length > 0) endpoint.sendData(stream, buf)
      if (typeof done === 'function') queueMicrotask(() => (done as (err?: Error) => void)())
      return true
    }
  process.stdout.write = wrap(StreamId.Stdout) as typeof process.stdout.write
  process.stderr.write = wrap(StreamId.Stderr) as typeof process.stderr.write
  return () => {
    process.stdout.write = saved[0]
    process.stderr.write = saved[1]
  }
}

/**
 * Vitest reports an uncaught error only when its own handler is the sole one ("otherwise user code
 * handles it"), so the init's handlers step aside while Vitest runs.
 */
function yieldErrorHandlers(): () => void {
  const emitter = process as unknown as NodeJS.EventEmitter
  const saved = (['uncaughtException', 'unhandledRejection'] as const).map((e) => [e, emitter.listeners(e)] as const)
  for (const [e, ls] of saved) for (const l of ls) emitter.off(e, l as (...a: unknown[]) => void)
  return () => {
    for (const [e, ls] of saved) for (const l of ls) emitter.on(e, l as (...a: unknown[]) => void)
  }
}

function uptimeMs(): number {
  try {
    return Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]!) * 1000)
  } catch {
    return Math.round(process.uptime() * 1000)
  }
}
