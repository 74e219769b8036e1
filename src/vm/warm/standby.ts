/**
 * Watch mode: a guest restored ahead of its run. When a watched run's guest ends, the next run of
 * its shape is likely (the next save): a guest is restored from the same snapshot right away and
 * primed with that run's archive (runtime/init/template.ts: it keeps the bytes and rehearses a run's
 * first steps with them, so the VMM's caches hold them), then waits. The next run of that shape
 * claims it instead of restoring one; if its archive is the same (a test edited, not the
 * scheduler), it sends none. It ran nothing of any run, as any restored guest. When that archive's
 * spec names a scheduler, the guest also starts it while it waits (attached ahead, for the run's
 * own files): then only a run with the same spec may count on it, and one with the same archive
 * claim it.
 *
 * One standby at a time (the shape that ran last), made only while no other guest runs (it would
 * take their CPU). It is left in place while runs of another shape or spec run, and goes when the
 * next standby is kept, when a run finds it stale (another key, or files other than those whose
 * scheduler it attached), when Vitest closes, or with the process.
 */
import { randomBytes } from 'node:crypto'
import { encodeFrame, encodeMessage, FrameType, runArchiveChunks, StreamId } from '../../../runtime/protocol/index.js'
import { log } from '../../util/log.js'
import type { VmProcess } from '../vm-process.js'

interface Standby {
  /** What a run must ask for to use it (its request's shape). */
  shape: string
  /** Its snapshot's key: a run of the same shape whose key differs (a rebuilt image) drops it. */
  key: string
  /** The run archive it is primed with (the last run's). */
  archive: Buffer
  /** That archive's run spec (JSON). */
  spec: string
  /** That spec's scheduler is attached ahead in it: no run with another spec or archive may claim it. */
  attachesAhead: boolean
  /** Stops logging its channel's errors: a run that claims it reads the channel from then on. */
  quietChannel?: () => void
  vm: Promise<VmProcess | undefined>
  /** Its VM once restored (killed synchronously at process exit). */
  restored?: VmProcess
  /** Its VM exited. */
  gone: boolean
  /** Not wanted any more: its restore is abandoned, its VM killed. */
  dropped: AbortController
}

let current: Standby | undefined
let exitHook = false
/** A watched run booted since the last dropStandby(): standbys are wanted. */
let wanted = false

/** A run that wants standbys booted (watch mode): keepStandby() works until dropStandby(). */
export function wantStandby(): void {
  wanted = true
}

/**
 * Restore a guest of `shape` now with `restore` (undefined: none could be), prime it with `archive`
 * (the run archive of the run that just ended, with its `spec`; `attachesAhead` when the spec names
 * a scheduler) and keep it for the next run of that shape. Replaces any other standby.
 */
export function keepStandby(
  shape: string,
  key: string,
  primed: { archive: Buffer; spec: string; attachesAhead: boolean },
  restore: (dropped: AbortSignal) => Promise<VmProcess | undefined>,
): void {
  if (!wanted) return // Vitest closed while this run's guest was ending
  discard()
  if (!exitHook) {
    exitHook = true
    process.on('exit', dropStandby)
  }
  const { archive, spec, attachesAhead } = primed
  const s: Standby = { shape, key, archive, spec, attachesAhead, gone: false, dropped: new AbortController(), vm: Promise.resolve(undefined) }
  s.vm = restore(s.dropped.signal).then(
    async (vm) => {
      if (!vm) return undefined
      s.restored = vm
      void vm.exited.then(() => {
        s.gone = true
        if (current === s) current = undefined
      })
      if (s.dropped.signal.aborted) {
        vm.kill()
        return undefined
      }
      try {
        s.quietChannel = await prime(vm, archive)
      } catch (e) {
        log.debug(`standby guest: not primed (${(e as Error).message}); dropped`)
        vm.kill()
        return undefined
      }
      return vm
    },
    (e: unknown) => {
      log.debug(`standby guest: ${(e as Error).message}`)
      return undefined
    },
  )
  void s.vm.then((vm) => {
    if (!vm && current === s) current = undefined
  })
  current = s
}

/**
 * The standby guest for a run of `shape` and `spec` whose snapshot has `key` and whose archive is
 * `archive`, restored (waited for if still being restored), and the archive it was primed with;
 * undefined if there is none, it died, or it is not for this run (see forRun). One of an older key,
 * or that attached the scheduler of other files ahead, is dropped. Taken: nobody else gets it.
 */
export async function claimStandby(shape: string, spec: string, key: string, archive: Buffer): Promise<{ vm: VmProcess; primedArchive: Buffer } | undefined> {
  const s = current
  if (!s || !forRun(s, shape, spec)) return undefined
  current = undefined // claimed: neither dropped nor offered again
  const vm = await s.vm
  if (!vm || s.gone) return undefined
  const stale =
    s.key !== key
      ? 'of an older snapshot of this shape (the image or VMM changed)'
      : s.attachesAhead && !s.archive.equals(archive)
        ? "it attached the scheduler of files other than this run's (the scheduler or an include was rebuilt)"
        : undefined
  if (stale) {
    log.debug(`standby guest: ${stale}; dropped`)
    vm.kill()
    return undefined
  }
  s.quietChannel?.()
  return { vm, primedArchive: s.archive }
}

/** Whether a standby guest a run of `shape` and `spec` may claim is kept (or being restored). */
export function hasStandby(shape: string, spec: string): boolean {
  return current !== undefined && forRun(current, shape, spec)
}

/** Of the run's shape; and of its spec when it attached that spec's scheduler ahead (another spec's run may not have it). */
function forRun(s: Standby, shape: string, spec: string): boolean {
  return s.shape === shape && (!s.attachesAhead || s.spec === spec)
}

/** Kill the standby guest, if any, and keep none until a run wants one again (Vitest closes; the process exits). */
export function dropStandby(): void {
  wanted = false
  discard()
}

/** The standby goes: its restore is abandoned, or its VM (restored, priming or primed) killed. */
function discard(): void {
  const s = current
  current = undefined
  if (!s) return
  s.dropped.abort() // a restore still under way is abandoned, and its VM killed once restored
  s.restored?.kill()
}

/**
 * The archive on its stream, then `prime`: written before the run's session reads the channel.
 * Returns what stops the channel's error log, for the run that claims it.
 */
async function prime(vm: VmProcess, archive: Buffer): Promise<() => void> {
  const stream = await vm.channel
  // Until a run claims it (its session then reads the channel), a standby dropped with its socket
  // reset is nobody's error.
  const onError = (e: Error) => log.debug(`standby guest: channel: ${e.message}`)
  stream.on('error', onError)
  for (const chunk of runArchiveChunks(archive)) stream.write(encodeFrame(FrameType.Data, chunk, StreamId.RunArchive))
  stream.write(encodeFrame(FrameType.Control, encodeMessage({ kind: 'prime', epochMs: Date.now(), seed: randomBytes(32).toString('hex') })))
  return () => stream.off('error', onError)
}
