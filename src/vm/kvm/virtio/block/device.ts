// The virtio-blk device (virtio 1.2 §5.2) behind the virtio-mmio transport's VirtioDevice
// interface: what it offers (features, config space, one request queue), and activation, which
// validates the driver's queue and hands it to the device's blk thread (thread.ts).
import { EFD_CLOEXEC } from '../../../../../native-shims/constants.js'
import * as libc from '../../../../../native-shims/libc.js'
import { log } from '../../../../util/log.js'
import { isPow2 } from '../../../memory/address.js'
import type { GuestMemory, GuestRam } from '../../../memory/guest-memory.js'
import { featureBit, VIRTIO_F, type VirtioActivation, type VirtioDevice } from '../mmio.js'
import { SplitQueue, VIRTQ_MAX_SIZE } from '../queue.js'
import type { QueueConfig } from '../queue-config.js'
import { IOV_MAX } from './backing.js'
import { type BackingSpec, describeBacking } from './backing-spec.js'
import { BLK_CONFIG, SECTOR_SIZE, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_ID_BLOCK } from './constants.js'
import type { BlkQueueSetup } from './handler.js'
import type { DiskLimits } from './request.js'
import { BlkThread, type BlkThreadResult, STOP_TIMEOUT_MS } from './thread.js'
import type { ThrottleOptions } from './throttle.js'

export interface BlkDeviceOptions {
  readonly backing: BackingSpec
  /** Guest RAM holding the queue and the buffers; needed to activate. */
  readonly ram?: GuestMemory
  /** The ioeventfd registered on QueueNotify for queue 0. Default: the device's own eventfd, written by queueNotify(). */
  readonly kickFd?: number
  /** The irqfd of the device's interrupt; the blk thread then raises it itself. Default: through activation.signalUsed. */
  readonly irqFd?: number
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
  /** How long a reset waits for the blk thread to leave a backing call before it is interrupted. Default 5 s. */
  readonly stopTimeoutMs?: number
}

/** The driver's setup cannot be used; the transport sets DEVICE_NEEDS_RESET. */
export class BlkActivationError extends Error {
  override readonly name = 'BlkActivationError'
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
  private running: { thread: BlkThread; kickFd: number } | undefined
  private readonly stopping = new Set<Promise<unknown>>()
  /** Every blk thread spawned, until it exited. */
  private readonly threads = new Set<BlkThread>()
  private last: BlkThreadResult | undefined

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
    // The transport adds VIRTIO_F_VERSION_1 and refuses a driver that does not accept it.
    this.features =
      featureBit(VIRTIO_F.EVENT_IDX) |
      featureBit(VIRTIO_BLK_F_SIZE_MAX) |
      featureBit(VIRTIO_BLK_F_SEG_MAX) |
      featureBit(VIRTIO_BLK_F_BLK_SIZE) |
      featureBit(VIRTIO_BLK_F_FLUSH) |
      (readOnly ? featureBit(VIRTIO_BLK_F_RO) : 0n)

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
    return this.running !== undefined
  }

  /**
   * The driver's queue checked against the device (throwing refuses activation), with what the
   * blk thread needs to serve it. The transport has already checked the negotiated features.
   */
  queueSetup(ram: GuestRam, queues: readonly QueueConfig[], features: bigint): BlkQueueSetup {
    const queue = queues[0]
    if (!queue || queues.length !== 1) throw new BlkActivationError(`virtio-blk has exactly one queue; got ${queues.length}`)
    if (queue.size > this.queueMaxSizes[0]!) throw new BlkActivationError(`queue size ${queue.size} exceeds the maximum ${this.queueMaxSizes[0]}`)
    const eventIdx = (features & featureBit(VIRTIO_F.EVENT_IDX)) !== 0n
    try {
      new SplitQueue(ram, queue, eventIdx)
    } catch (e) {
      throw new BlkActivationError(`request queue unusable: ${(e as Error).message}`, { cause: e })
    }
    const t = this.options.throttle
    return { queue, eventIdx, segMax: this.segMax, sizeMax: this.sizeMax, serial: this.options.serial ?? 'ktstr', ...(t ? { throttle: t } : {}) }
  }

  /**
   * DRIVER_OK: starts the blk thread, which opens and owns the backing; a failure there or later
   * reaches the transport through activation.fail.
   */
  activate(a: VirtioActivation): void {
    if (this.active) throw new BlkActivationError('virtio-blk is already active; reset it first')
    const memory = this.options.ram
    if (!memory) throw new BlkActivationError('virtio-blk has no guest memory attached (options.ram)')
    const setup = this.queueSetup(memory, a.queues, a.features)
    const ownKick = this.options.kickFd === undefined ? libc.eventfd(0, EFD_CLOEXEC) : undefined
    const kickFd = this.options.kickFd ?? ownKick!
    let thread: BlkThread
    try {
      thread = BlkThread.spawn(
        {
          ...setup,
          ram: memory.describe(),
          backing: this.options.backing,
          kickFd,
          ...(this.options.irqFd === undefined ? {} : { irqFd: this.options.irqFd, interruptStatus: a.interruptStatus }),
        },
        { onFailure: (why) => a.fail(`virtio-blk thread: ${why}`), onUsedBuffer: () => a.signalUsed(0) },
      )
    } catch (e) {
      if (ownKick !== undefined) libc.close(ownKick)
      throw e
    }
    this.threads.add(thread)
    void thread.gone.then(() => {
      this.threads.delete(thread)
      if (ownKick !== undefined) libc.close(ownKick)
    })
    thread.ready.catch((e: unknown) => {
      if (this.running?.thread === thread) a.fail(e instanceof Error ? e.message : String(e))
    })
    this.running = { thread, kickFd }
  }

  /** Resolves once the blk thread is serving the queue (immediately when inactive). */
  async whenStarted(): Promise<void> {
    await this.running?.thread.ready
  }

  /** A QueueNotify that reached the VMM (no ioeventfd, or a test): wakes the blk thread. */
  queueNotify(queue: number): void {
    if (queue === 0 && this.running) libc.signalEventfd(this.running.kickFd)
  }

  /**
   * Device reset (status 0): stops serving the queue. Blocks until the blk thread no longer
   * touches guest memory (at most stopTimeoutMs); the thread exits in the background (close()
   * waits for it, interrupting a backing call that hangs).
   */
  reset(): void {
    const r = this.running
    this.running = undefined
    if (!r) return
    const limit = this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS
    const quiet = r.thread.quiesce(limit)
    if (!quiet) log.warn(`virtio-blk thread did not stop within ${limit / 1000} s of a device reset (a backing call is hanging); interrupting it`)
    const done = r.thread.stop(quiet ? limit : 0).then((result) => {
      this.last = result ?? this.last
      this.stopping.delete(done)
    })
    this.stopping.add(done)
  }

  /**
   * Teardown: reset, then wait for every blk thread to exit (bounded: see BlkThread.stop).
   * Resolves with the last thread's final stats.
   */
  async close(): Promise<BlkThreadResult | undefined> {
    this.reset()
    await Promise.all(this.stopping)
    return this.last
  }

  /** Blk threads that have not exited (after close(): ones stuck in an uninterruptible backing call). */
  get liveThreads(): number {
    return this.threads.size
  }

  /** Resolves once every blk thread spawned so far has exited (guest RAM may go then). */
  async threadsGone(): Promise<void> {
    await Promise.all([...this.threads].map((w) => w.gone))
  }
}
