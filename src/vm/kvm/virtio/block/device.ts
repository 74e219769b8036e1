// The virtio-blk device (virtio 1.2 §5.2) behind the virtio-mmio transport's VirtioDevice
// interface: what it offers (features, config space, one request queue), and activation, which
// hands the queue to the blk worker thread (or serves it in the calling thread when `inline`).
import { EFD_CLOEXEC } from '../../../../../native-shims/constants.js'
import * as libc from '../../../../../native-shims/libc.js'
import { log } from '../../../../util/log.js'
import type { GuestRam, GuestMemory } from '../../memory/guest-memory.js'
import type { QueueConfig } from '../queue-config.js'
import { SplitQueue, VIRTQ_MAX_SIZE, type SplitQueueState } from '../queue.js'
import type { VirtioActivation, VirtioDevice } from '../mmio.js'
import { IOV_MAX, type Backing } from './backing.js'
import { describeBacking, openBacking, type BackingSpec } from './backing-spec.js'
import {
  BLK_CONFIG,
  SECTOR_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_BLOCK,
} from './constants.js'
import { BlkQueueHandler } from './handler.js'
import { encodeSerial } from './io.js'
import type { DiskLimits } from './request.js'
import { Throttle, type Clock, type ThrottleOptions } from './throttle.js'
import { BlkWorker, STOP_TIMEOUT_MS, type BlkWorkerResult } from './worker.js'

export interface BlkDeviceOptions {
  readonly backing: BackingSpec
  /** Guest RAM holding the queue and the buffers (GuestMemory); needed to activate. */
  readonly ram?: GuestMemory
  /** The ioeventfd registered on QueueNotify for queue 0. Default: the device's own eventfd, written by queueNotify(). */
  readonly kickFd?: number
  /** The irqfd of the device's interrupt; the worker then raises it itself. Default: through activation.signalUsed. */
  readonly irqFd?: number
  /** Serve the queue in the calling thread from queueNotify() instead of a worker thread. */
  readonly inline?: boolean
  /** GET_ID answer, at most 20 bytes used. Default 'ktstr'. */
  readonly serial?: string
  /** Largest queue size the driver may choose (QueueNumMax). Default 256. */
  readonly queueSize?: number
  /** seg_max: most data descriptors per request. Default min(126, queueSize - 2). */
  readonly segMax?: number
  /** size_max: largest data descriptor in bytes. Default 1 MiB. */
  readonly sizeMax?: number
  /** blk_size: the logical block size the guest should use. Default 512. */
  readonly blkSize?: number
  readonly throttle?: ThrottleOptions
  /** How long a reset waits for the worker to leave a backing call before it is interrupted. Default 5 s. */
  readonly stopTimeoutMs?: number
}

/** The driver's setup cannot be used; the transport sets DEVICE_NEEDS_RESET. */
export class BlkActivationError extends Error {
  override readonly name = 'BlkActivationError'
}

const bit = (n: number) => 1n << BigInt(n)
const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0

interface Inline {
  handler: BlkQueueHandler
  backing: Backing
  fail: (why: string) => void
}

export class VirtioBlkDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK
  readonly queueMaxSizes: readonly number[]
  /** Features offered to the driver. */
  readonly features: bigint
  readonly configSize: number = BLK_CONFIG.length
  /** Disk size in bytes and in 512-byte sectors (a trailing partial sector is not exposed). */
  readonly size: number
  readonly capacity: bigint
  readonly readOnly: boolean
  readonly segMax: number
  readonly sizeMax: number
  readonly blkSize: number
  private readonly config: Uint8Array
  private running: { worker: BlkWorker; kickFd: number } | undefined
  private inlineState: Inline | undefined
  private readonly stopping = new Set<Promise<unknown>>()
  /** Every worker thread spawned, until it exited. */
  private readonly threads = new Set<BlkWorker>()
  private last: BlkWorkerResult | undefined

  constructor(readonly options: BlkDeviceOptions) {
    const queueSize = options.queueSize ?? 256
    if (!isPow2(queueSize) || queueSize < 4 || queueSize > VIRTQ_MAX_SIZE) throw new RangeError(`virtio-blk queue size ${queueSize} must be a power of 2 in [4, ${VIRTQ_MAX_SIZE}]`)
    const segMax = options.segMax ?? Math.min(126, queueSize - 2)
    if (!Number.isInteger(segMax) || segMax < 1 || segMax > Math.min(IOV_MAX, queueSize - 2)) {
      throw new RangeError(`virtio-blk seg_max ${segMax} must be in [1, ${Math.min(IOV_MAX, queueSize - 2)}] (header and status take 2 descriptors)`)
    }
    const sizeMax = options.sizeMax ?? 1 << 20
    if (!Number.isInteger(sizeMax) || sizeMax < 4096 || sizeMax > 0xffff_ffff) throw new RangeError(`virtio-blk size_max ${sizeMax} must be in [4096, 2^32)`)
    const blkSize = options.blkSize ?? SECTOR_SIZE
    if (!isPow2(blkSize) || blkSize < SECTOR_SIZE || blkSize > 65536) throw new RangeError(`virtio-blk blk_size ${blkSize} must be a power of 2 in [512, 65536]`)

    const { size, readOnly } = describeBacking(options.backing)
    this.queueMaxSizes = [queueSize]
    this.size = size
    this.capacity = BigInt(Math.floor(size / SECTOR_SIZE))
    this.readOnly = readOnly
    this.segMax = segMax
    this.sizeMax = sizeMax
    this.blkSize = blkSize
    this.features =
      bit(VIRTIO_F_VERSION_1) |
      bit(VIRTIO_F_RING_EVENT_IDX) |
      bit(VIRTIO_BLK_F_SIZE_MAX) |
      bit(VIRTIO_BLK_F_SEG_MAX) |
      bit(VIRTIO_BLK_F_BLK_SIZE) |
      bit(VIRTIO_BLK_F_FLUSH) |
      (readOnly ? bit(VIRTIO_BLK_F_RO) : 0n)

    // struct virtio_blk_config (§5.2.4), little-endian; geometry, topology and the rest stay zero.
    this.config = new Uint8Array(BLK_CONFIG.length)
    const dv = new DataView(this.config.buffer)
    dv.setBigUint64(BLK_CONFIG.capacity, this.capacity, true)
    dv.setUint32(BLK_CONFIG.sizeMax, sizeMax, true)
    dv.setUint32(BLK_CONFIG.segMax, segMax, true)
    dv.setUint32(BLK_CONFIG.blkSize, blkSize, true)
  }

  /** A little-endian config field of `size` bytes at `offset` (bytes past the structure read as zero). */
  readConfig(offset: number, size: 1 | 2 | 4): number {
    let v = 0
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (this.config[offset + i] ?? 0)
    return v
  }

  /** virtio-blk has no field the driver may write without CONFIG_WCE (not offered); ignored. */
  writeConfig(_offset: number, _size: 1 | 2 | 4, _value: number): void {}

  /** The limits requests are validated against. */
  get limits(): DiskLimits {
    return { capacity: this.capacity, readOnly: this.readOnly, segMax: this.segMax, sizeMax: this.sizeMax }
  }

  get active(): boolean {
    return this.running !== undefined || this.inlineState !== undefined
  }

  private checkActivation(ram: GuestRam, queues: readonly QueueConfig[], acked: bigint): { queue: QueueConfig; eventIdx: boolean } {
    if ((acked & ~this.features) !== 0n) throw new BlkActivationError(`driver accepted features 0x${(acked & ~this.features).toString(16)} that were not offered`)
    if ((acked & bit(VIRTIO_F_VERSION_1)) === 0n) throw new BlkActivationError('driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)')
    const queue = queues[0]
    if (!queue || queues.length !== 1) throw new BlkActivationError(`virtio-blk has exactly one queue; got ${queues.length}`)
    if (queue.size > this.queueMaxSizes[0]!) throw new BlkActivationError(`queue size ${queue.size} exceeds the maximum ${this.queueMaxSizes[0]}`)
    const eventIdx = (acked & bit(VIRTIO_F_RING_EVENT_IDX)) !== 0n
    try {
      new SplitQueue(ram, queue, eventIdx)
    } catch (e) {
      throw new BlkActivationError(`request queue unusable: ${(e as Error).message}`, { cause: e })
    }
    return { queue, eventIdx }
  }

  /**
   * DRIVER_OK. Validates the negotiated features and the queue (throwing refuses activation),
   * then starts the blk worker thread, which opens and owns the backing; a failure there or later
   * reaches the transport through activation.fail.
   */
  activate(a: VirtioActivation): void {
    if (this.active) throw new BlkActivationError('virtio-blk is already active; reset it first')
    const memory = this.options.ram
    if (!memory) throw new BlkActivationError('virtio-blk has no guest memory attached (options.ram)')
    const { queue, eventIdx } = this.checkActivation(memory, a.queues, a.features)
    if (this.options.inline) {
      const backing = openBacking(this.options.backing)
      const handler = this.directHandler({ ram: memory, queue, ackedFeatures: a.features, backing, notify: () => a.signalUsed(0), onBroken: a.fail })
      this.inlineState = { backing, handler, fail: a.fail }
      return
    }
    const ownKick = this.options.kickFd === undefined ? libc.eventfd(0, EFD_CLOEXEC) : undefined
    const kickFd = this.options.kickFd ?? ownKick!
    let worker: BlkWorker
    try {
      worker = this.spawn(memory, queue, eventIdx, kickFd, a)
    } catch (e) {
      if (ownKick !== undefined) libc.close(ownKick)
      throw e
    }
    this.threads.add(worker)
    void worker.gone.then(() => {
      this.threads.delete(worker)
      if (ownKick !== undefined) libc.close(ownKick)
    })
    worker.ready.catch((e: unknown) => {
      if (this.running?.worker === worker) a.fail(e instanceof Error ? e.message : String(e))
    })
    this.running = { worker, kickFd }
  }

  private spawn(memory: GuestMemory, queue: QueueConfig, eventIdx: boolean, kickFd: number, a: VirtioActivation): BlkWorker {
    return BlkWorker.spawn(
      {
        ram: memory.describe(),
        queue,
        eventIdx,
        backing: this.options.backing,
        segMax: this.segMax,
        sizeMax: this.sizeMax,
        serial: this.options.serial ?? 'ktstr',
        kickFd,
        ...(this.options.throttle ? { throttle: this.options.throttle } : {}),
        ...(this.options.irqFd === undefined ? {} : { irqFd: this.options.irqFd, interruptStatus: a.interruptStatus }),
      },
      {
        onFailure: (why) => a.fail(`virtio-blk worker: ${why}`),
        onUsedBuffer: () => a.signalUsed(0),
      },
    )
  }

  /** Resolves once the worker thread is serving the queue (immediately when inline or inactive). */
  async whenStarted(): Promise<void> {
    await this.running?.worker.ready
  }

  /** A QueueNotify that reached the VMM (no ioeventfd, or a test): wakes the worker, or drains inline. */
  queueNotify(queue: number): void {
    if (queue !== 0) return
    const inline = this.inlineState
    if (inline) {
      try {
        inline.handler.drain()
      } catch (e) {
        inline.fail(`virtio-blk: ${e instanceof Error ? e.message : String(e)}`)
      }
      return
    }
    if (this.running) libc.signalEventfd(this.running.kickFd)
  }

  /**
   * Device reset (status 0): stops serving the queue. Blocks until the worker no longer touches
   * guest memory (at most stopTimeoutMs); its thread exits in the background (close() waits for it,
   * interrupting a backing call that hangs).
   */
  reset(): void {
    if (this.inlineState) {
      this.inlineState.backing.close()
      this.inlineState = undefined
    }
    const r = this.running
    this.running = undefined
    if (!r) return
    const limit = this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS
    const quiet = r.worker.quiesce(limit)
    if (!quiet) log.warn(`virtio-blk worker did not stop within ${limit / 1000} s of a device reset (a backing call is hanging); interrupting it`)
    const done = r.worker.stop(quiet ? limit : 0).then((result) => {
      this.last = result ?? this.last
      this.stopping.delete(done)
    })
    this.stopping.add(done)
  }

  /**
   * Teardown: reset, then wait for every worker thread to exit (bounded: see BlkWorker.stop).
   * Resolves with the last worker's final stats.
   */
  async close(): Promise<BlkWorkerResult | undefined> {
    this.reset()
    await Promise.all(this.stopping)
    return this.last
  }

  /** Worker threads that have not exited (after close(): ones stuck in an uninterruptible backing call). */
  get liveThreads(): number {
    return this.threads.size
  }

  /** Resolves once every worker thread spawned so far has exited (guest RAM may go then). */
  async threadsGone(): Promise<void> {
    await Promise.all([...this.threads].map((w) => w.gone))
  }

  /**
   * The request processing in the calling thread over a Backing object, for tests and for callers
   * that drive a queue directly: call drain() on the result after each kick.
   */
  directHandler(a: {
    ram: GuestRam
    queue: QueueConfig
    ackedFeatures: bigint
    backing: Backing
    notify: () => void
    clock?: Clock
    sleep?: (ms: number) => boolean
    queueState?: SplitQueueState
    onBroken?: (why: string) => void
  }): BlkQueueHandler {
    const { queue, eventIdx } = this.checkActivation(a.ram, [a.queue], a.ackedFeatures)
    const t = this.options.throttle
    return new BlkQueueHandler({
      ram: a.ram,
      queue: new SplitQueue(a.ram, queue, eventIdx, a.queueState),
      backing: a.backing,
      limits: { ...this.limits, capacity: BigInt(Math.floor(a.backing.size / SECTOR_SIZE)), readOnly: a.backing.readOnly },
      serial: encodeSerial(this.options.serial ?? 'ktstr'),
      notify: a.notify,
      ...(t ? { throttle: new Throttle(t, a.clock) } : {}),
      ...(a.sleep ? { sleep: a.sleep } : {}),
      ...(a.onBroken ? { onBroken: a.onBroken } : {}),
    })
  }
}
