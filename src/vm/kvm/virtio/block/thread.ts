// The blk thread of one virtio-blk device, seen from the main thread: it is started on
// DRIVER_OK with everything it needs as structured-clonable data, and stopped on a device reset
// or at teardown. Its body (thread-main.ts) blocks in a read() on the queue's kick eventfd (the
// ioeventfd KVM signals on QueueNotify), drains the available ring and raises the used-buffer
// interrupt itself (InterruptStatus bit 0, then the irqfd). Teardown sets a stop flag in shared
// memory and writes the kick eventfd, so the thread never stays blocked in native code, where it
// could not be terminated (Worker.terminate() takes effect only once a native call returns); the
// thread then fdatasyncs a writable backing and closes it. A thread stuck in a backing call (a
// hung NFS or FUSE server) gets the interrupt signal (EINTR) and is terminated: stop() is
// bounded, and what the thread opened is closed by the owner once it exits.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import * as libc from '../../../../../native-shims/libc.js'
import { KtstrError } from '../../../../util/errors.js'
import { log } from '../../../../util/log.js'
import { packageRoot } from '../../../../util/paths.js'
import type { GuestMemoryDescription } from '../../../memory/guest-memory.js'
import type { SplitQueueState } from '../queue.js'
import type { BackingSpec } from './backing-spec.js'
import type { BlkHandlerStats, BlkQueueSetup } from './handler.js'

/** Everything the thread needs, as structured-clonable data (workerData). */
export interface BlkThreadInit extends BlkQueueSetup {
  readonly ram: GuestMemoryDescription
  readonly backing: BackingSpec
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
export const CTL_STOP = 0
/** Never written: the throttle sleeps on it and stop notifies it. */
export const CTL_WAKE = 1
/** STATE_* (0 while starting): lets a synchronous reset wait until the thread no longer touches guest memory. */
export const CTL_STATE = 2
/** The thread's kernel thread id, for the interrupt signal. */
export const CTL_TID = 3
/** The backing fd the thread opened itself (-1: none): closed by the owner if the thread was terminated. */
export const CTL_FD = 4
const CTL_WORDS = 5
export const STATE_RUNNING = 1
export const STATE_STOPPED = 2

export type BlkThreadMessage = { type: 'ready' } | { type: 'used' } | { type: 'error'; message: string } | { type: 'stopped'; stats: BlkHandlerStats; queueState: SplitQueueState }

export interface BlkThreadData {
  init: BlkThreadInit
  control: SharedArrayBuffer
}

/** The compiled thread entry; from TypeScript sources (Vitest) the copy under dist/. */
export function blkThreadScript(): URL {
  const here = new URL('./thread-main.js', import.meta.url)
  const herePath = fileURLToPath(here)
  if (fs.existsSync(herePath)) return here
  const built = path.join(packageRoot(), 'dist', path.relative(packageRoot(), herePath))
  if (fs.existsSync(built)) return pathToFileURL(built)
  throw new KtstrError(`the virtio-blk thread script ${built} is missing; build ktstr with \`npm run build\``)
}

export interface BlkThreadResult {
  readonly stats: BlkHandlerStats
  readonly queueState: SplitQueueState
}

export interface BlkThreadEvents {
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

/** The main thread's handle of a blk thread. */
export class BlkThread {
  /** Resolves once the thread opened the backing and validated the queue; rejects if it could not. */
  readonly ready: Promise<void>
  /** Resolves once the thread has exited and what it opened is closed: only then may guest RAM go. */
  readonly gone: Promise<void>
  private result: BlkThreadResult | undefined
  private failure: string | undefined
  private started = false
  private exited = false
  private readonly control: Int32Array

  private constructor(
    private readonly worker: Worker,
    control: SharedArrayBuffer,
    private readonly kickFd: number,
    events: BlkThreadEvents,
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
        log.warn(`virtio-blk thread failed: ${why}`)
        events.onFailure?.(why)
      }
    }
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: BlkThreadMessage) => {
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
            if (!this.started) reject(new KtstrError(`virtio-blk thread could not start: ${m.message}`))
            fail(m.message)
        }
      })
      worker.on('error', (e) => {
        if (!this.started) reject(e)
        fail(e.message)
      })
      worker.once('exit', (code) => {
        if (!this.started) reject(new Error(`virtio-blk thread exited (code ${code}) before it was ready`))
        // A thread that died without passing through runBlkThread's finally must not leave
        // quiesce() waiting.
        Atomics.store(this.control, CTL_STATE, STATE_STOPPED)
      })
    })
    this.ready.catch(() => {}) // callers that never await it must not get an unhandled rejection
  }

  /** Starts the thread (synchronously; await `ready` to know it came up). */
  static spawn(init: BlkThreadInit, events: BlkThreadEvents = {}, script: URL = blkThreadScript()): BlkThread {
    const control = new SharedArrayBuffer(4 * CTL_WORDS)
    new Int32Array(control)[CTL_FD] = -1
    const data: BlkThreadData = { init, control }
    const worker = new Worker(script, { workerData: data, name: 'ktstr-blk' })
    return new BlkThread(worker, control, init.kickFd, events)
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
    // The wake word changes too, not only the notify: a thread about to enter a throttle sleep
    // (Atomics.wait on WAKE == 0) would otherwise miss a notify sent just before and sleep it out.
    Atomics.store(this.control, CTL_WAKE, 1)
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
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<BlkThreadResult | undefined> {
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
      log.warn('virtio-blk thread is stuck in a backing call the kernel does not interrupt; left behind (it exits when the call returns)')
    }
    return this.result
  }
}
