/**
 * The guest's PID 1: node started by the kernel (`rdinit=<node> -- <this file>`).
 * Mount, open the channel, say hello, start and verify the scheduler, run what the host asked
 * (a command, a shell, or Vitest's worker), report, stop the scheduler, power off.
 */
import fs from 'node:fs'
import { ENV_INSPECTOR, type GuestEndpoint, type GuestMessage, type GuestPhase, RUN_SPEC_PATH, type RunSpec, type SchedulerExit } from '../protocol/index.js'
import { findPort, openEndpoint } from './channel.js'
import { type RunningCommand, runCommand } from './command.js'
import { loopbackUp } from './loopback.js'
import { mountAll } from './mounts.js'
import { powerOff } from './power.js'
import { runEnv } from './run-env.js'
import { say } from './say.js'
import { type RunningScheduler, startScheduler, watchScheduler } from './scheduler.js'
import { StdinBuffer } from './stdin-buffer.js'
import { awaitRunArchive, preloadTemplate, takeAheadScheduler, warmUp } from './template.js'
import { type ChildExit, runWorkerInChild } from './worker-child.js'

/** How long to wait for the host to acknowledge the final report before powering off anyway. */
const FAREWELL_MS = 3000

let endpoint: GuestEndpoint | undefined
let scheduler: RunningScheduler | undefined
let command: RunningCommand | undefined
let finishing = false
let hostSaidShutdown: () => void = () => {}
const shutdownRequested = new Promise<void>((r) => (hostSaidShutdown = r))

function uptimeMs(): number {
  return Math.round(parseFloat(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]!) * 1000)
}

function send(msg: GuestMessage): void {
  endpoint?.sendControl(msg)
}

/** `ahead`: reached before the run started (a scheduler a watch-mode standby attached). */
function phase(p: GuestPhase, ahead = false): void {
  send({ kind: 'phase', phase: p, uptimeMs: uptimeMs(), ...(ahead ? { ahead: true as const } : {}) })
}

/** Stop what runs, flush the channel, give the host a moment to acknowledge, power off. */
async function finish(): Promise<never> {
  if (!finishing) {
    finishing = true
    command?.kill('SIGKILL')
    await scheduler?.stop().catch(() => {})
    if (endpoint?.isOpen) {
      await endpoint.flush()
      await Promise.race([shutdownRequested, new Promise((r) => setTimeout(r, FAREWELL_MS))])
    }
    powerOff()
  }
  return new Promise<never>(() => {})
}

function fatal(message: string): Promise<never> {
  say(message)
  send({ kind: 'fatal', message })
  return finish()
}

async function main(): Promise<void> {
  const warnings = mountAll()
  endpoint = openEndpoint(await findPort())
  // No run spec: a template guest, snapshotted as soon as it says so; a guest restored from that
  // snapshot continues here once the host sent its per-run archive.
  const template = !fs.existsSync(RUN_SPEC_PATH)
  const started = template ? awaitRunArchive(endpoint) : undefined
  endpoint.on('close', () => {
    // The host is gone (or closed the channel): nobody is listening, so stop.
    if (!finishing) say('the channel to the host closed; powering off')
    hostSaidShutdown()
    void finish()
  })
  const stdin = new StdinBuffer(endpoint)
  endpoint.on('corrupt', (err) => void fatal(`channel corrupted: ${err.message}`))
  endpoint.on('control', (msg) => {
    if (msg.kind === 'shutdown') {
      hostSaidShutdown()
      void finish()
    } else if (msg.kind === 'signal') command?.kill(msg.signal)
  })
  if (started) {
    loopbackUp()
    await preloadTemplate() // first: the rehearsal asserts with the Vitest it loads
    await warmUp()
    send({ kind: 'template-ready', uptimeMs: uptimeMs() })
    await started
  }
  const spec = JSON.parse(fs.readFileSync(RUN_SPEC_PATH, 'utf8')) as RunSpec
  send({ kind: 'hello', uptimeMs: uptimeMs(), nodeVersion: process.version })
  for (const w of warnings) say(`warning: ${w}`)
  if (!template) loopbackUp()
  phase('mounted')

  if (spec.scheduler) {
    // A watch-mode standby attached the run's scheduler while it waited for the save.
    const ahead = await takeAheadScheduler()
    const started = ahead ?? (await startScheduler(spec.scheduler, spec.attachTimeoutMs))
    if (!started.ok) {
      send({
        kind: 'scheduler-failed',
        scheduler: spec.scheduler.name,
        message: started.message,
        ...(started.exit ? { exit: started.exit } : {}),
      })
      return void (await finish())
    }
    scheduler = started.scheduler
    phase('scheduler-attached', ahead !== undefined)
  }

  let gone: SchedulerExit | undefined
  const unwatch = scheduler
    ? watchScheduler(scheduler, (exit) => {
        gone = exit
        send({ kind: 'scheduler-exited', scheduler: spec.scheduler!.name, exit })
        void finish()
      })
    : () => {}

  const env = runEnv(spec.env)
  const cwd = fs.existsSync(spec.cwd) ? spec.cwd : '/'
  const mode = spec.mode
  if (mode.kind === 'vitest') {
    phase('command-started')
    let result: ChildExit = { code: 0, signal: null }
    if (spec.env[ENV_INSPECTOR]) result = await runWorkerInChild(endpoint, mode.workerEntry, { env, cwd })
    else {
      type VitestWorker = { runVitestWorker(ep: GuestEndpoint, o: { env: Record<string, string>; cwd: string }): Promise<void> }
      const worker = (await import(mode.workerEntry)) as VitestWorker
      await worker.runVitestWorker(endpoint, { env, cwd })
    }
    unwatch()
    if (!gone) send({ kind: 'exit', code: result.code, signal: result.signal, uptimeMs: uptimeMs() })
  } else {
    const argv = mode.kind === 'exec' ? mode.argv : ['/ktstr/bin/sh', '-i']
    command = runCommand(endpoint, argv, { env: mode.kind === 'shell' ? { PS1: 'ktstr# ', ...env } : env, cwd, stdin })
    phase('command-started')
    const result = await command.done
    unwatch()
    if (!gone) send({ kind: 'exit', code: result.code, signal: result.signal, uptimeMs: uptimeMs() })
  }
  await finish()
}

process.on('uncaughtException', (err) => void fatal(`uncaught: ${err.stack ?? err.message}`))
process.on('unhandledRejection', (err) => void fatal(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`))
main().catch((err: Error) => fatal(err.stack ?? err.message))
