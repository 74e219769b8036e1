// The per-VM virtio-blk worker thread. It owns the Backing and the queue state: it blocks in a
// read() on the queue's kick eventfd (the ioeventfd KVM signals on QueueNotify), drains the
// available ring, and raises a used-buffer interrupt when the driver wants one (InterruptStatus
// bit 0, then the irqfd). Teardown sets a stop flag in shared memory and writes the kick eventfd,
// so the thread never stays blocked in native code, where it could not be terminated
// (Worker.terminate() takes effect only once a native call returns); the thread then fdatasyncs
// a writable backing and closes it. A thread stuck in a backing call (a hung NFS or FUSE server)
// gets the interrupt signal (EINTR) and is terminated: stop() is bounded, and what the thread
// opened is closed by the owner once it exits.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import * as libc from '../../../../../native-shims/libc.js'
import { KtstrError } from '../../../../util/errors.js'
import { log } from '../../../../util/log.js'
import { packageRoot } from '../../../../util/paths.js'
import { GuestMemory, type SharedGuestRegion } from '../../memory/guest-memory.js'
import type { QueueConfig } from '../queue-config.js'
import { SplitQueue, type SplitQueueState } from '../queue.js'
import type { Backing } from './backing.js'
import { ownedFd, openBacking, type BackingSpec } from './backing-spec.js'
import { SECTOR_SIZE } from './constants.js'
import { BlkQueueHandler, type BlkHandlerStats } from './handler.js'
import { encodeSerial } from './io.js'
import { Throttle, type ThrottleOptions } from './throttle.js'

/** Everything the thread needs, as structured-clonable data (workerData). */
export interface BlkWorkerInit {
  readonly ram: readonly SharedGuestRegion[]
  readonly queue: QueueConfig
  readonly queueState?: SplitQueueState
  /** VIRTIO_F_RING_EVENT_IDX was negotiated. */
  readonly eventIdx: boolean
  readonly backing: BackingSpec
  readonly segMax: number
  readonly sizeMax: number
  readonly serial: string
  readonly throttle?: ThrottleOptions
  /** The queue's kick eventfd (an ioeventfd under KVM). */
  readonly kickFd: number
  /**
   * The irqfd for a used-buffer interrupt. Without one the thread posts a message and the owner's
   * onUsedBuffer raises the interrupt (slower: it goes through the owner's event loop).
   */
  readonly irqFd?: number
  /**
   * The transport's InterruptStatus word (an Int32Array over a SharedArrayBuffer). With an irqFd,
   * the thread sets bit 0 (used buffer, virtio 1.2 §4.2.2) and writes the irqfd only when the bit
   * was clear: a driver that has not acked it yet walks the ring after acking and sees the entry.
   */
  readonly interruptStatus?: Int32Array
}

// Words of the shared control block.
const CTL_STOP = 0
/** Never written: the throttle sleeps on it and stop notifies it. */
const CTL_WAKE = 1
/** STATE_* (0 while starting): lets a synchronous reset wait until the thread no longer touches guest memory. */
const CTL_STATE = 2
/** The thread's kernel thread id, for the interrupt signal. */
const CTL_TID = 3
/** The backing fd the thread opened itself (-1: none): closed by the owner if the thread was terminated. */
const CTL_FD = 4
const CTL_WORDS = 5
const STATE_RUNNING = 1
const STATE_STOPPED = 2

const USED_BUFFER = 1

export type BlkWorkerMessage =
  | { type: 'ready' }
  | { type: 'used' }
  | { type: 'error'; message: string }
  | { type: 'stopped'; stats: BlkHandlerStats; queueState: SplitQueueState }

export interface BlkThreadData {
  init: BlkWorkerInit
  control: SharedArrayBuffer
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/**
 * The thread's body (worker-main.ts calls it with workerData). Returns after stop; the control
 * block's state word says STOPPED from then on, whatever happened.
 */
export function runBlkWorker(data: BlkThreadData, post: (m: BlkWorkerMessage) => void): void {
  const { init } = data
  const ctl = new Int32Array(data.control)
  const stopped = () => {
    Atomics.store(ctl, CTL_STATE, STATE_STOPPED)
    Atomics.notify(ctl, CTL_STATE)
  }
  Atomics.store(ctl, CTL_TID, libc.gettid())
  let backing: Backing | undefined
  let handler: BlkQueueHandler
  let queue: SplitQueue
  try {
    const ram = GuestMemory.from(init.ram)
    queue = new SplitQueue(ram, init.queue, init.eventIdx, init.queueState)
    backing = openBacking(init.backing)
    Atomics.store(ctl, CTL_FD, ownedFd(backing) ?? -1)
    const { irqFd, interruptStatus: isr } = init
    handler = new BlkQueueHandler({
      ram,
      queue,
      backing,
      limits: { capacity: BigInt(Math.floor(backing.size / SECTOR_SIZE)), readOnly: backing.readOnly, segMax: init.segMax, sizeMax: init.sizeMax },
      serial: encodeSerial(init.serial),
      throttle: init.throttle && new Throttle(init.throttle),
      notify: () => {
        if (irqFd === undefined) return post({ type: 'used' })
        if (isr && Atomics.or(isr, 0, USED_BUFFER) & USED_BUFFER) return
        libc.signalEventfd(irqFd)
      },
      sleep: (ms) => Atomics.wait(ctl, CTL_WAKE, 0, ms) === 'timed-out',
      stopRequested: () => Atomics.load(ctl, CTL_STOP) !== 0,
      onBroken: (why) => post({ type: 'error', message: why }),
    })
  } catch (e) {
    Atomics.store(ctl, CTL_FD, -1)
    backing?.close()
    post({ type: 'error', message: message(e) })
    stopped()
    return
  }
  Atomics.store(ctl, CTL_STATE, STATE_RUNNING)
  post({ type: 'ready' })
  const counter = new BigUint64Array(1)
  try {
    for (;;) {
      if (Atomics.load(ctl, CTL_STOP)) break
      handler.drain()
      if (Atomics.load(ctl, CTL_STOP)) break
      try {
        libc.read(init.kickFd, counter, 8)
      } catch (e) {
        const code = (e as { code?: string }).code
        if (code !== 'EINTR' && code !== 'EAGAIN') throw e
      }
    }
  } catch (e) {
    post({ type: 'error', message: message(e) })
  } finally {
    stopped()
    // Writes the guest did not flush still reach the disk once the VM stops (QEMU flushes on
    // close too); a failing sync is reported, the backing is closed either way.
    try {
      if (!backing.readOnly) backing.syncData()
    } catch (e) {
      post({ type: 'error', message: `fdatasync of the backing at stop failed: ${message(e)}` })
    }
    Atomics.store(ctl, CTL_FD, -1)
    backing.close()
  }
  post({ type: 'stopped', stats: handler.stats, queueState: queue.state })
}

/** The compiled worker entry; from TypeScript sources (Vitest) the copy under dist/. */
export function blkWorkerScript(): URL {
  const here = new URL('./worker-main.js', import.meta.url)
  const herePath = fileURLToPath(here)
  if (fs.existsSync(herePath)) return here
  const built = path.join(packageRoot(), 'dist', path.relative(packageRoot(), herePath))
  if (fs.existsSync(built)) return pathToFileURL(built)
  throw new KtstrError(`the virtio-blk worker script ${built} is missing; build ktstr with \`npm run build\``)
}

export interface BlkWorkerResult {
  readonly stats: BlkHandlerStats
  readonly queueState: SplitQueueState
}

export interface BlkWorkerEvents {
  /**
   * The device cannot go on after it was ready: the driver broke the ring, or the thread failed
   * (a broken kick fd, a crash). Start failures reject `ready` instead.
   */
  readonly onFailure?: (why: string) => void
  /** A used-buffer notification when the init has no irqFd. */
  readonly onUsedBuffer?: () => void
}

/** How long stop() waits for the thread to leave on its own, then for a terminated thread to exit. */
export const STOP_TIMEOUT_MS = 5000
const TERMINATE_GRACE_MS = 1000

/** Resolves true once `p` settled, false after `ms`. */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  return Promise.race([p.then(() => true), late]).finally(() => clearTimeout(timer))
}

/** Host-side handle of a blk worker thread. */
export class BlkWorker {
  /** Resolves once the thread opened the backing and validated the queue; rejects if it could not. */
  readonly ready: Promise<void>
  /** Resolves once the thread has exited and what it opened is closed: only then may guest RAM go. */
  readonly gone: Promise<void>
  private result: BlkWorkerResult | undefined
  private failure: string | undefined
  private started = false
  private exited = false
  private readonly control: Int32Array

  private constructor(
    private readonly worker: Worker,
    control: SharedArrayBuffer,
    private readonly kickFd: number,
    events: BlkWorkerEvents,
  ) {
    this.control = new Int32Array(control)
    this.gone = new Promise((resolve) =>
      worker.once('exit', () => {
        this.exited = true
        // A terminated thread skipped its finally: the backing it opened is closed here.
        const fd = Atomics.exchange(this.control, CTL_FD, -1)
        if (fd >= 0) libc.close(fd)
        resolve()
      }),
    )
    const fail = (why: string) => {
      this.failure ??= why
      if (this.started) {
        log.warn(`virtio-blk worker failed: ${why}`)
        events.onFailure?.(why)
      }
    }
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: BlkWorkerMessage) => {
        switch (m.type) {
          case 'ready':
            this.started = true
            resolve()
            return
          case 'used':
            events.onUsedBuffer?.()
            return
          case 'stopped':
            this.result = { stats: m.stats, queueState: m.queueState }
            return
          case 'error':
            if (!this.started) reject(new KtstrError(`virtio-blk worker could not start: ${m.message}`))
            fail(m.message)
        }
      })
      worker.on('error', (e) => {
        if (!this.started) reject(e)
        fail(e.message)
      })
      worker.once('exit', (code) => {
        if (!this.started) reject(new Error(`virtio-blk worker exited (code ${code}) before it was ready`))
        // A thread that died without passing through runBlkWorker's finally must not leave
        // quiesce() waiting.
        Atomics.store(this.control, CTL_STATE, STATE_STOPPED)
      })
    })
    this.ready.catch(() => {}) // callers that never await it must not get an unhandled rejection
  }

  /** Starts the thread (synchronously; await `ready` to know it came up). */
  static spawn(init: BlkWorkerInit, events: BlkWorkerEvents = {}, script: URL = blkWorkerScript()): BlkWorker {
    const control = new SharedArrayBuffer(4 * CTL_WORDS)
    new Int32Array(control)[CTL_FD] = -1
    const data: BlkThreadData = { init, control }
    const worker = new Worker(script, { workerData: data, name: 'ktstr-blk' })
    return new BlkWorker(worker, control, init.kickFd, events)
  }

  /** Why the thread failed, if it did. */
  get error(): string | undefined {
    return this.failure
  }

  /** The thread has not exited yet. */
  get running(): boolean {
    return !this.exited
  }

  private requestStop(): void {
    Atomics.store(this.control, CTL_STOP, 1)
    if (Atomics.load(this.control, CTL_STATE) === STATE_STOPPED) return
    Atomics.notify(this.control, CTL_WAKE)
    libc.signalEventfd(this.kickFd)
  }

  /**
   * Synchronous stop for a device reset: asks the thread to stop and blocks (Atomics.wait) until
   * it no longer touches guest memory, at most `timeoutMs`. A request already popped is finished
   * first. Returns false on timeout (a backing call that hangs).
   */
  quiesce(timeoutMs = STOP_TIMEOUT_MS): boolean {
    this.requestStop()
    const end = performance.now() + timeoutMs
    for (;;) {
      const state = Atomics.load(this.control, CTL_STATE)
      if (state === STATE_STOPPED) return true
      const left = end - performance.now()
      if (left <= 0) return false
      Atomics.wait(this.control, CTL_STATE, state, left)
    }
  }

  /**
   * Stops the thread and waits for it to exit, at most `timeoutMs` plus a second: a thread still
   * in a backing call then gets the interrupt signal (a blocking syscall returns EINTR) and is
   * terminated at its next JavaScript step. Resolves with its final stats (undefined if it never
   * ran or was terminated). A thread stuck beyond that (an uninterruptible sleep in the kernel)
   * is left behind with a warning; `gone` resolves when it finally exits.
   */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<BlkWorkerResult | undefined> {
    this.requestStop()
    if (await settlesWithin(this.gone, timeoutMs)) return this.result
    // Termination first: when the interrupted syscall returns, the thread runs no more JavaScript.
    void this.worker.terminate()
    const tid = Atomics.load(this.control, CTL_TID)
    if (tid > 0 && !this.exited) {
      try {
        libc.tgkill(libc.getpid(), tid, libc.interruptSignal())
      } catch {
        /* it exited meanwhile */
      }
    }
    if (!(await settlesWithin(this.gone, TERMINATE_GRACE_MS))) {
      log.warn('virtio-blk worker thread is stuck in a backing call the kernel does not interrupt; left behind (it exits when the call returns)')
    }
    return this.result
  }
}
