/**
 * Watch mode: a guest restored ahead of its run. When a watched run's guest ends, the next run of
 * its shape is likely (the next save): a guest is restored from the same snapshot right away and
 * primed with that run's archive (runtime/init/template.ts: it keeps the bytes and rehearses a run's
 * first steps with them, so the VMM's caches hold them), then waits. The next run of that shape
 * claims it instead of restoring one; if its archive is the same (a test edited, not the
 * scheduler), it sends none. The guest is as pristine as any restored one: it ran nothing of any run.
 * When that archive's spec names a scheduler, the guest also starts it while it waits (attached
 * ahead, for the run's own files): then only a run with the same archive may claim it.
 *
 * One standby at a time (the shape that ran last), made only while no other guest runs (it would
 * take their CPU), dropped when claimed by another shape, when Vitest closes, or with the process.
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
  /** That archive's scheduler is attached ahead in it: no run with another archive may claim it. */
  attachesAhead: boolean
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
 * (the run archive of the run that just ended; `attachesAhead` when its spec names a scheduler) and
 * keep it for the next run of that shape. Replaces any other standby.
 */
export function keepStandby(
  shape: string,
  key: string,
  primed: { archive: Buffer; attachesAhead: boolean },
  restore: (dropped: AbortSignal) => Promise<VmProcess | undefined>,
): void {
  if (!wanted) return // Vitest closed while this run's guest was ending
  discard()
  if (!exitHook) {
    exitHook = true
    process.on('exit', dropStandby)
  }
  const { archive, attachesAhead } = primed
  const s: Standby = { shape, key, archive, attachesAhead, gone: false, dropped: new AbortController(), vm: Promise.resolve(undefined) }
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
        await prime(vm, archive)
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
 * The standby guest for a run of `shape` whose snapshot has `key` and whose archive is `archive`,
 * restored (waited for if still being restored), and the archive it was primed with; undefined if
 * there is none, it died, or it is of another shape or key (it is then dropped). One that attached
 * the scheduler of another archive ahead is left for a run of that archive (another file of a
 * rerun; else the next standby replaces it). Taken: nobody else gets it.
 */
export async function claimStandby(shape: string, key: string, archive: Buffer): Promise<{ vm: VmProcess; primedArchive: Buffer } | undefined> {
  const s = current
  if (!s || s.shape !== shape) return undefined
  if (s.attachesAhead && !s.archive.equals(archive)) {
    log.debug("standby guest: it attached another run's scheduler ahead; left for a run of that run's files")
    return undefined
  }
  current = undefined // claimed: neither dropped nor offered again
  const vm = await s.vm
  if (!vm || s.gone) return undefined
  if (s.key !== key) {
    log.debug('standby guest: of an older snapshot of this shape (the image or VMM changed); dropped')
    vm.kill()
    return undefined
  }
  return { vm, primedArchive: s.archive }
}

/** Whether a standby guest of `shape` is kept (or being restored). */
export function hasStandby(shape: string): boolean {
  return current?.shape === shape
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

/** The archive on its stream, then `prime`: written before the run's session reads the channel. */
async function prime(vm: VmProcess, archive: Buffer): Promise<void> {
  const stream = await vm.channel
  // Until a run claims it (its session then reads the channel), a standby dropped with its socket
  // reset is nobody's error.
  stream.on('error', (e) => log.debug(`standby guest: channel: ${e.message}`))
  for (const chunk of runArchiveChunks(archive)) stream.write(encodeFrame(FrameType.Data, chunk, StreamId.RunArchive))
  stream.write(encodeFrame(FrameType.Control, encodeMessage({ kind: 'prime', epochMs: Date.now(), seed: randomBytes(32).toString('hex') })))
}
