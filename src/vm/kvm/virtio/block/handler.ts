// Drains a virtio-blk request queue: pop, validate, throttle, perform, write status, publish the
// used entry, notify when the driver asked for it. Pure and synchronous: the blk thread runs it
// (thread-main.ts), and tests drive the same handler directly (blkQueueHandler).
import { log } from '../../../../util/log.js'
import type { GuestRam } from '../../../memory/guest-memory.js'
import { type DescriptorChain, SplitQueue, type SplitQueueState } from '../queue.js'
import type { QueueConfig } from '../queue-config.js'
import type { Backing } from './backing.js'
import { SECTOR_SIZE, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP } from './constants.js'
import { encodeSerial, performRequest } from './io.js'
import { type DiskLimits, parseRequest } from './request.js'
import { type Clock, Throttle, type ThrottleOptions } from './throttle.js'

/** The queue as the driver set it up and the device's limits (VirtioBlkDevice.queueSetup); structured-clonable. */
export interface BlkQueueSetup {
  readonly queue: QueueConfig
  readonly queueState?: SplitQueueState
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  readonly eventIdx: boolean
  readonly segMax: number
  readonly sizeMax: number
  /** GET_ID answer, at most 20 bytes used. */
  readonly serial: string
  readonly throttle?: ThrottleOptions
}

/** The handler over an open backing: how the blk thread assembles it, and how tests do. */
export function blkQueueHandler(
  s: BlkQueueSetup,
  env: Pick<BlkHandlerOptions, 'ram' | 'backing' | 'notify' | 'sleep' | 'stopRequested' | 'onBroken'> & { clock?: Clock },
): BlkQueueHandler {
  const { clock, ...o } = env
  const { backing } = o
  return new BlkQueueHandler({
    ...o,
    queue: new SplitQueue(env.ram, s.queue, s.eventIdx, s.queueState),
    limits: { capacity: BigInt(Math.floor(backing.size / SECTOR_SIZE)), readOnly: backing.readOnly, segMax: s.segMax, sizeMax: s.sizeMax },
    serial: encodeSerial(s.serial),
    ...(s.throttle ? { throttle: new Throttle(s.throttle, clock) } : {}),
  })
}

export interface BlkHandlerStats {
  /** Chains returned on the used ring. */
  completed: number
  ok: number
  ioErrors: number
  unsupported: number
  /** Chains without a usable status byte (returned with used length 0). */
  dropped: number
  bytesRead: number
  bytesWritten: number
  flushes: number
  /** Used-buffer notifications sent. */
  notifications: number
  /** Total milliseconds spent waiting for the throttle. */
  throttledMs: number
}

export interface BlkHandlerOptions {
  readonly ram: GuestRam
  readonly queue: SplitQueue
  readonly backing: Backing
  readonly limits: DiskLimits
  /** GET_ID answer (encodeSerial). */
  readonly serial: Uint8Array
  /** Used-buffer notification (irqfd write). */
  readonly notify: () => void
  readonly throttle?: Throttle
  /** Blocks for `ms`; returns early (false) when the blk thread is told to stop. Default: Atomics.wait. */
  readonly sleep?: (ms: number) => boolean
  /** Checked between requests; true stops draining (teardown). */
  readonly stopRequested?: () => boolean
  /** The driver broke the ring protocol; the queue is dead until reset (DEVICE_NEEDS_RESET). Default: a warning. */
  readonly onBroken?: (why: string) => void
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4))
const defaultSleep = (ms: number) => (Atomics.wait(sleepCell, 0, 0, ms), true)

export class BlkQueueHandler {
  readonly stats: BlkHandlerStats = {
    completed: 0,
    ok: 0,
    ioErrors: 0,
    unsupported: 0,
    dropped: 0,
    bytesRead: 0,
    bytesWritten: 0,
    flushes: 0,
    notifications: 0,
    throttledMs: 0,
  }
  private brokenReported = false

  constructor(private readonly o: BlkHandlerOptions) {}

  /** Where the queue stands (its next avail and used indices). */
  get queueState(): SplitQueueState {
    return this.o.queue.state
  }

  /**
   * Handles every available chain, re-arming notifications until the ring stays empty (so a kick
   * that raced with the drain is not lost). Returns the number of chains completed.
   */
  drain(): number {
    const { queue } = this.o
    let done = 0
    for (;;) {
      for (let chain = queue.popAvail(); chain; chain = queue.popAvail()) {
        try {
          this.handle(chain)
        } catch (e) {
          // A bug, not guest input (that never throws): give the chain back rather than wedge the queue.
          log.warn(`virtio-blk: request ${chain.head} failed unexpectedly: ${e instanceof Error ? e.stack : String(e)}`)
          queue.addUsed(chain.head, 0)
        }
        done++
        if (this.o.stopRequested?.()) {
          this.flushNotification()
          return done
        }
      }
      this.flushNotification()
      if (!queue.enableNotification()) break
    }
    if (queue.broken && !this.brokenReported) {
      this.brokenReported = true
      const why = `the driver broke the request queue (${queue.broken}); ignoring it until the device is reset`
      if (this.o.onBroken) this.o.onBroken(why)
      else log.warn(`virtio-blk: ${why}`)
    }
    return done
  }

  private flushNotification(): void {
    if (this.o.queue.needsNotification()) {
      this.stats.notifications++
      this.o.notify()
    }
  }

  private complete(head: number, status: number | undefined, code: number, written: number): void {
    const s = this.stats
    let used = 0
    if (status !== undefined) {
      this.o.ram.write(status, Uint8Array.of(code))
      used = written + 1
      if (code === VIRTIO_BLK_S_OK) s.ok++
      else if (code === VIRTIO_BLK_S_UNSUPP) s.unsupported++
      else s.ioErrors++
    } else {
      s.dropped++
    }
    this.o.queue.addUsed(head, used)
    s.completed++
  }

  private handle(chain: DescriptorChain): void {
    const parsed = parseRequest(this.o.ram, chain, this.o.limits)
    if (!parsed.ok) {
      const r = parsed.rejection
      log.debug(`virtio-blk: chain ${r.head} rejected: ${r.reason}`)
      this.complete(r.head, r.status, r.code, 0)
      return
    }
    const req = parsed.request
    const bytes = req.type === 'in' || req.type === 'out' ? req.len : 0
    const wait = this.o.throttle?.admit(bytes) ?? 0
    if (wait > 0) {
      // Completed requests should not wait behind a throttled one.
      this.flushNotification()
      this.stats.throttledMs += wait
      ;(this.o.sleep ?? defaultSleep)(wait)
    }
    const c = performRequest(this.o.ram, this.o.backing, req, this.o.serial)
    if (c.status === VIRTIO_BLK_S_IOERR) log.debug(`virtio-blk: ${req.type} request ${req.head} failed: ${c.error}`)
    else if (req.type === 'in') this.stats.bytesRead += req.len
    else if (req.type === 'out') this.stats.bytesWritten += req.len
    else if (req.type === 'flush') this.stats.flushes++
    this.complete(req.head, req.status, c.status, c.written)
  }
}
