/**
 * Turns a running VM into a GuestSession: connects the channel, waits for the guest's hello,
 * tracks what the guest reports, enforces the wall-clock limit, and cleans up when the VM is gone.
 */
import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import { Endpoint, type GuestMessage, type HostEndpoint, MalformedMessage, runArchiveChunks, StreamId } from '../../runtime/protocol/index.js'
import { log } from '../util/log.js'
import { BootFailure } from './boot-failure.js'
import { STOP_GRACE_MS } from './defaults.js'
import { describeOutcome } from './outcome.js'
import { removeRunDir } from './run-dir.js'
import type { BootTiming, GuestOutcome, GuestSession } from './session.js'
import { type MonitorPlan, sessionMonitor } from './session-monitor.js'
import type { VmExit, VmProcess } from './vm-process.js'

/** How long a VM's exit waits for the guest's last channel bytes to be read. */
const CHANNEL_DRAIN_MS = 1000
/**
 * How long a guest that reported its result gets to power off before the VM is killed (its init
 * stops the scheduler within 3 s, then syncs and powers off). The reported result stands either way.
 */
const POWER_OFF_GRACE_MS = 5000

const live = new Set<VmProcess>()
let exitHookInstalled = false

/** How many guests' sessions are running in this process now. */
export function liveGuests(): number {
  return live.size
}

/** No VM outlives the host process, however it leaves. */
function trackVm(vm: VmProcess): void {
  live.add(vm)
  void vm.exited.then(() => live.delete(vm))
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', () => {
      for (const v of live) v.kill()
    })
  }
}

export interface SessionOptions {
  t0: number
  imageMs: number
  timeoutS: number
  tmpDir: string
  monitor?: MonitorPlan
  /** Warm start: the per-run archive (a gzip'd newc cpio) for the guest restored from a template snapshot. */
  runArchive?: Buffer
  /**
   * Watch mode: the VM was restored ahead of this run and primed with this archive; when it is the
   * run's, it is not sent again.
   */
  primedArchive?: Buffer
}

export async function startSession(vm: VmProcess, opts: SessionOptions): Promise<GuestSession> {
  trackVm(vm)
  const since = (t: number) => Math.round(t - opts.t0)
  // A VM restored ahead of its run (watch mode) started before it: 0.
  const timing: BootTiming = {
    imageMs: Math.round(opts.imageMs),
    vmStartedMs: Math.max(0, since(vm.startedAt)),
    ...(opts.runArchive ? { restoredMs: since(performance.now()) } : {}),
    ...(opts.primedArchive ? { standby: true as const } : {}),
  }
  let reported: GuestOutcome | undefined
  let forced: GuestOutcome | undefined
  let powerOffTimer: NodeJS.Timeout | undefined
  // The host's stall watchdog ends the run, whether or not the guest can still answer.
  const monitor = sessionMonitor(vm, opts.monitor, (stall) => {
    forced ??= { kind: 'stall', message: stall.message }
    vm.kill()
  })

  const timer = setTimeout(() => {
    forced ??= { kind: 'timeout', afterS: opts.timeoutS }
    monitor.readScheduler({ keepMaps: true }) // for a dump, before the kill (at most a second)
    vm.kill()
  }, opts.timeoutS * 1000)

  // What the guest wrote before the VM went away is still in flight on the host side: let the
  // channel drain (bounded) before deciding the outcome, so a last report or output is not lost.
  const channelDrained = vm.channel.then(
    (s) =>
      new Promise<void>((resolve) => {
        if (s.readableEnded || s.destroyed) return resolve()
        s.once('end', resolve)
        s.once('close', resolve)
      }),
    () => undefined,
  )
  const done: Promise<GuestOutcome> = vm.exited.then(async (exit) => {
    let drainTimer: NodeJS.Timeout | undefined
    await Promise.race([channelDrained, new Promise((r) => (drainTimer = setTimeout(r, CHANNEL_DRAIN_MS)))])
    clearTimeout(drainTimer)
    clearTimeout(timer)
    timing.endMs = since(performance.now())
    if (vm.console.firstByteAt !== undefined) timing.kernelMs = since(vm.console.firstByteAt)
    clearTimeout(powerOffTimer)
    monitor.stop()
    removeRunDir(opts.tmpDir)
    // What the guest reported is the result, whatever ended the VM after it (a timeout, a kill).
    const outcome = reported ?? forced ?? unreported(vm, exit)
    log.debug(`guest ended: ${describeOutcome(outcome)}`)
    return outcome
  })

  let stream: Duplex
  try {
    stream = await vm.channel
  } catch {
    const outcome = await done
    throw failure(vm, outcome)
  }
  const channel: HostEndpoint = new Endpoint(stream, decodeGuestMessage)
  channel.on('corrupt', (err) => {
    forced ??= err instanceof MalformedMessage ? { kind: 'malformed-message', message: err.message } : { kind: 'channel-corrupt', message: err.message }
    vm.kill()
  })
  const hello = new Promise<boolean>((resolve) => {
    channel.on('control', (msg) => {
      if (msg.kind === 'hello') {
        // Frames that came in the same read as the hello wait until whoever awaited bootGuest()
        // has attached its listeners (resumed below, after their continuation has run).
        channel.hold()
        timing.initMs = since(performance.now())
        timing.guestKernelMs = msg.uptimeMs
        monitor.start()
        resolve(true)
      }
      onGuestMessage(msg)
    })
    void done.then(() => resolve(false))
  })

  function onGuestMessage(msg: GuestMessage): void {
    switch (msg.kind) {
      case 'phase':
        log.debug(`guest: ${msg.phase}${msg.ahead ? ' ahead of the run' : ''} (${since(performance.now())} ms into the run, at ${msg.uptimeMs} ms of guest uptime)`)
        if (msg.phase === 'command-started') timing.commandMs = since(performance.now())
        if (msg.phase === 'scheduler-attached') {
          if (msg.ahead) timing.schedulerAhead = true
          monitor.readScheduler()
        }
        break
      case 'exit':
        timing.exitMs = since(performance.now())
        report({ kind: 'exited', code: msg.code, signal: msg.signal })
        break
      case 'scheduler-failed':
        report({
          kind: 'scheduler-failed',
          scheduler: msg.scheduler,
          message: msg.message,
          ...(msg.exit ? { exit: msg.exit } : {}),
        })
        break
      case 'scheduler-exited': {
        // The kernel console may name the reason when the guest's own log read missed it.
        const reason = msg.exit.reason ?? vm.console.schedExtExit?.reason
        report({ kind: 'scheduler-exited', scheduler: msg.scheduler, exit: { ...msg.exit, ...(reason ? { reason } : {}) } })
        break
      }
      case 'fatal':
        report({ kind: 'guest-error', message: msg.message })
        break
      case 'hello':
        break
    }
  }

  /** The guest's result is in: ask it to power off, and kill the VM if it has not soon after. */
  function report(outcome: GuestOutcome): void {
    reported ??= outcome
    clearTimeout(timer)
    // After a scheduler's exit, while the guest is still up: whatever of its maps is left for a
    // dump (its process has usually gone with them by now). Not on a command's exit: the guest is
    // already stopping its scheduler then.
    if (outcome.kind === 'scheduler-exited') monitor.readScheduler({ keepMaps: true })
    monitor.stop() // its power-off is not watched
    powerOffTimer ??= setTimeout(() => {
      log.debug(`the guest did not power off within ${POWER_OFF_GRACE_MS} ms of reporting its result; killing the VM`)
      vm.kill()
    }, POWER_OFF_GRACE_MS)
    channel.sendControl({ kind: 'shutdown' })
  }

  if (opts.runArchive) {
    // A restored guest waits for its run (runtime/init/template.ts): the archive, then `start`.
    const primed = opts.primedArchive?.equals(opts.runArchive) === true
    if (primed) {
      timing.primed = true
      log.debug("warm start: the guest was primed with this run's files; none sent")
    } else for (const chunk of runArchiveChunks(opts.runArchive)) channel.sendData(StreamId.RunArchive, chunk)
    channel.sendControl({ kind: 'start', epochMs: Date.now(), seed: randomBytes(32).toString('hex'), ...(primed ? { primed: true as const } : {}) })
  }
  // After the run's archive is on its way: the guest unpacks it meanwhile.
  setImmediate(() => monitor.prepare())
  if (!(await hello)) throw failure(vm, await done)
  setImmediate(() => channel.resume())

  const stop = async (): Promise<GuestOutcome> => {
    forced ??= reported ?? { kind: 'stopped' }
    monitor.stop()
    channel.sendControl({ kind: 'shutdown' })
    const grace = setTimeout(() => vm.kill(), STOP_GRACE_MS)
    const outcome = await done
    clearTimeout(grace)
    return outcome
  }
  return {
    channel,
    done,
    timing,
    ...(vm.memory && { memory: vm.memory }),
    monitor: monitor.status,
    consoleTail: (n) => vm.console.tail(n),
    stop,
    kill: () => vm.kill(),
  }
}

/** The VM is gone and the guest never said how: read the console for why. */
function unreported(vm: VmProcess, exit: VmExit): GuestOutcome {
  if (vm.console.panic) return { kind: 'panic', message: vm.console.panic }
  if (vm.console.restarted) return { kind: 'vm-died', message: 'the guest kernel restarted the machine (a reboot in the guest) before the guest reported a result' }
  const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`
  const detail = exit.stderr ? `: ${exit.stderr.split('\n').slice(-3).join(' | ')}` : ''
  return { kind: 'vm-died', message: `the VM exited (${how}) before the guest reported a result${detail}` }
}

function failure(vm: VmProcess, outcome: GuestOutcome): BootFailure {
  // A guest that reset itself did boot; it just never got as far as its init's hello.
  const what = vm.console.restarted ? 'guest ended before its init reported in' : 'guest failed to boot'
  return new BootFailure(`${what}: ${describeOutcome(outcome)}`, outcome, vm.console.tail(30))
}
