/**
 * The virtio-mmio transport, version 2 (virtio 1.2 §4.2): the register file a driver sees in a
 * 4 KiB MMIO window, the device status state machine (§2.1, §3.1.1), feature negotiation (§2.2)
 * and queue configuration (§4.2.3.2). It wraps a `VirtioDevice` (the device type's logic) and
 * hands it the negotiated features and the queue addresses (QueueConfig) on DRIVER_OK; it never
 * touches a virtqueue itself.
 *
 * Runtime wiring: route MMIO exits in [window.base, window.base + 0x1000) to read()/write() with the
 * offset; register an ioeventfd on base + 0x50 (QueueNotify, datamatch = queue index) per queue so
 * kicks bypass the VMM (writes that still arrive here call device.queueNotify); `onInterrupt`
 * raises the device's edge-triggered IRQ (irqfd or KVM_IRQ_LINE pulse). Device threads (blk threads) may set
 * InterruptStatus bits themselves through the shared `interruptStatus` word (Atomics.or) before
 * writing their irqfd.
 *
 * A driver breaking the rules (§4.2.2.2, §2.1.2, §3.1.1) gets its write ignored and the event is
 * reported through `onProtocolError`; an activation the device refuses sets DEVICE_NEEDS_RESET.
 */
import { log } from '../../../util/log.js'
import { guestAddressFromParts, hex, isPow2 } from '../../memory/address.js'
import type { MmioDeviceWindow } from '../memory/layout.js'
import type { QueueConfig } from './queue-config.js'

/** Register offsets (§4.2.2, Table 4.1). */
export const MMIO_REG = {
  MAGIC_VALUE: 0x000,
  VERSION: 0x004,
  DEVICE_ID: 0x008,
  VENDOR_ID: 0x00c,
  DEVICE_FEATURES: 0x010,
  DEVICE_FEATURES_SEL: 0x014,
  DRIVER_FEATURES: 0x020,
  DRIVER_FEATURES_SEL: 0x024,
  QUEUE_SEL: 0x030,
  QUEUE_NUM_MAX: 0x034,
  QUEUE_NUM: 0x038,
  QUEUE_READY: 0x044,
  QUEUE_NOTIFY: 0x050,
  INTERRUPT_STATUS: 0x060,
  INTERRUPT_ACK: 0x064,
  STATUS: 0x070,
  QUEUE_DESC_LOW: 0x080,
  QUEUE_DESC_HIGH: 0x084,
  QUEUE_DRIVER_LOW: 0x090,
  QUEUE_DRIVER_HIGH: 0x094,
  QUEUE_DEVICE_LOW: 0x0a0,
  QUEUE_DEVICE_HIGH: 0x0a4,
  SHM_SEL: 0x0ac,
  SHM_LEN_LOW: 0x0b0,
  SHM_LEN_HIGH: 0x0b4,
  SHM_BASE_LOW: 0x0b8,
  SHM_BASE_HIGH: 0x0bc,
  QUEUE_RESET: 0x0c0,
  CONFIG_GENERATION: 0x0fc,
  CONFIG: 0x100,
} as const

/** "virt" */
export const MMIO_MAGIC = 0x74726976
export const MMIO_VERSION = 2
/** 'KTST' — VendorID is free-form; Linux only shows it in sysfs. */
export const MMIO_VENDOR_ID = 0x4b545354

/** Device status bits (§2.1). */
export const DEVICE_STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const

/** InterruptStatus / InterruptACK bits (§4.2.2). */
export const VIRTIO_INTERRUPT = { USED_BUFFER: 1, CONFIG_CHANGE: 2 } as const

/** Reserved feature bits (§6), as bit numbers. */
export const VIRTIO_F = {
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  NOTIF_CONFIG_DATA: 39,
  RING_RESET: 40,
} as const

export const featureBit = (bit: number): bigint => 1n << BigInt(bit)
export const hasFeature = (features: bigint, bit: number): boolean => (features & featureBit(bit)) !== 0n

/** What a device type implements; the transport owns everything else. */
export interface VirtioDevice {
  /** Virtio device ID (§5): 2 block, 3 console. */
  readonly deviceType: number
  /** Feature bits the device offers; the transport adds VIRTIO_F_VERSION_1. */
  readonly features: bigint
  /** QueueNumMax of each queue; the length is the number of queues. */
  readonly queueMaxSizes: readonly number[]
  /** Bytes of device-specific configuration space. */
  readonly configSize: number
  /** A config-space read; `offset` is relative to 0x100 and lies in [0, configSize). */
  readConfig(offset: number, size: 1 | 2 | 4): number
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void
  /**
   * DRIVER_OK: start serving the queues. Throwing (or a rejected promise, for a device that starts
   * a thread) refuses: DEVICE_NEEDS_RESET.
   */
  activate(activation: VirtioActivation): void | Promise<void>
  /** Stop using the queues and forget negotiated state (status 0 written). */
  // biome-ignore lint/suspicious/noConfusingVoidType: a synchronous reset returns nothing (void)
  reset(): void | Promise<unknown>
  /** A QueueNotify write that reached the VMM (no ioeventfd for it). */
  queueNotify(queue: number): void
  /** What the device holds beyond the transport's registers, for a snapshot (JSON-safe). */
  saveState?(): unknown
  /** Called after the transport re-activated the device from a snapshot, with saveState()'s value. */
  loadState?(state: unknown): void
}

/** The transport's registers and the device's own state (a snapshot's part). */
export interface VirtioMmioState {
  status: number
  deviceFeaturesSel: number
  driverFeaturesSel: number
  /** The driver's features, as a hex string (a u64). */
  driverFeatures: string
  queueSel: number
  generation: number
  queues: QueueRegs[]
  activated: boolean
  interruptStatus: number
  device?: unknown
}

export interface VirtioActivation {
  /** The negotiated feature bits (including VERSION_1). */
  readonly features: bigint
  /** Every queue's configuration by queue index; queues the driver did not set up have ready = false. */
  readonly queues: readonly QueueConfig[]
  /** Used-buffer notification for `queue` (InterruptStatus bit 0 + interrupt). */
  signalUsed(queue: number): void
  /** The shared InterruptStatus word (Int32Array over a SharedArrayBuffer) for device threads. */
  readonly interruptStatus: Int32Array
  /** The device cannot go on (broken ring, guest memory fault): sets DEVICE_NEEDS_RESET (§2.1.2). */
  fail(why: string): void
}

export interface VirtioMmioOptions {
  /** Raise the device's interrupt (an edge: irqfd write or KVM_IRQ_LINE 1 then 0). */
  readonly onInterrupt?: () => void
  /** A driver broke a rule of the spec; its access was ignored. Default: log.debug. */
  readonly onProtocolError?: (message: string) => void
}

export interface QueueRegs {
  num: number
  ready: boolean
  desc: [number, number]
  driver: [number, number]
  device: [number, number]
}

export class VirtioMmioTransport {
  private status = 0
  private deviceFeaturesSel = 0
  private driverFeaturesSel = 0
  private driverFeaturesValue = 0n
  private queueSel = 0
  private generation = 0
  private queues: QueueRegs[]
  private activated = false
  /** Counts activations, so a late rejection of an old one is ignored. */
  private epoch = 0
  /** InterruptStatus; shared so device threads can set bits. */
  readonly interruptStatus = new Int32Array(new SharedArrayBuffer(4))

  constructor(
    readonly device: VirtioDevice,
    private readonly opts: VirtioMmioOptions = {},
  ) {
    if (device.deviceType === 0) throw new RangeError('virtio device ID 0 is reserved')
    this.queues = this.freshQueues()
  }

  /** DeviceFeatures as offered: the device's bits plus VERSION_1. */
  get offeredFeatures(): bigint {
    return this.device.features | featureBit(VIRTIO_F.VERSION_1)
  }

  /** The driver's accepted features (meaningful once FEATURES_OK stuck). */
  get driverFeatures(): bigint {
    return this.driverFeaturesValue
  }

  get deviceStatus(): number {
    return this.status
  }

  get configGeneration(): number {
    return this.generation
  }

  get isActivated(): boolean {
    return this.activated
  }

  /** Call with the guest stopped: no register access or device thread may run meanwhile. */
  saveState(): VirtioMmioState {
    return {
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeaturesValue.toString(16),
      queueSel: this.queueSel,
      generation: this.generation,
      queues: this.queues.map((q) => ({ ...q, desc: [...q.desc], driver: [...q.driver], device: [...q.device] })),
      activated: this.activated,
      interruptStatus: Atomics.load(this.interruptStatus, 0),
      ...(this.device.saveState ? { device: this.device.saveState() } : {}),
    }
  }

  /**
   * A fresh transport takes a saved state: an activated device is activated again with the saved
   * queues (which checks them against guest RAM as the driver's own DRIVER_OK would) and then
   * given its own state. Throws when the state does not fit this device.
   */
  loadState(s: VirtioMmioState): void {
    if (s.queues.length !== this.queues.length) throw new Error(`the snapshot's virtio device ${this.device.deviceType} has ${s.queues.length} queues, not ${this.queues.length}`)
    s.queues.forEach((q, i) => {
      const max = this.device.queueMaxSizes[i]!
      if (q.num > max || !isPow2(q.num)) throw new Error(`the snapshot's queue ${i} of virtio device ${this.device.deviceType} has size ${q.num}, not a power of 2 up to ${max}`)
    })
    this.status = s.status & 0xff
    this.deviceFeaturesSel = s.deviceFeaturesSel >>> 0
    this.driverFeaturesSel = s.driverFeaturesSel >>> 0
    this.driverFeaturesValue = BigInt(`0x${s.driverFeatures}`)
    this.queueSel = s.queueSel >>> 0
    this.generation = s.generation >>> 0
    this.queues = s.queues.map((q) => ({ ...q, desc: [q.desc[0], q.desc[1]], driver: [q.driver[0], q.driver[1]], device: [q.device[0], q.device[1]] }))
    Atomics.store(this.interruptStatus, 0, s.interruptStatus & (VIRTIO_INTERRUPT.USED_BUFFER | VIRTIO_INTERRUPT.CONFIG_CHANGE))
    if (!s.activated) return
    this.activate()
    if (!this.activated) throw new Error(`virtio device ${this.device.deviceType} refused the snapshot's queues`)
    if (s.device !== undefined) this.device.loadState?.(s.device)
  }

  /** A register read at `offset` in the window, `size` bytes wide. */
  read(offset: number, size: number): number {
    if (offset >= MMIO_REG.CONFIG) return this.readConfig(offset - MMIO_REG.CONFIG, size)
    if (size !== 4 || offset % 4 !== 0) {
      this.violation(`${size}-byte read at ${hex(offset)}: control registers are 32-bit aligned`)
      return 0
    }
    const q = this.queues[this.queueSel]
    switch (offset) {
      case MMIO_REG.MAGIC_VALUE:
        return MMIO_MAGIC
      case MMIO_REG.VERSION:
        return MMIO_VERSION
      case MMIO_REG.DEVICE_ID:
        return this.device.deviceType
      case MMIO_REG.VENDOR_ID:
        return MMIO_VENDOR_ID
      case MMIO_REG.DEVICE_FEATURES:
        return this.deviceFeaturesSel > 1 ? 0 : Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn)
      case MMIO_REG.QUEUE_NUM_MAX:
        return q ? this.device.queueMaxSizes[this.queueSel]! : 0 // 0: no such queue (§4.2.3.2 step 3)
      case MMIO_REG.QUEUE_READY:
        return q?.ready ? 1 : 0
      case MMIO_REG.INTERRUPT_STATUS:
        return Atomics.load(this.interruptStatus, 0) >>> 0
      case MMIO_REG.STATUS:
        return this.status
      case MMIO_REG.SHM_LEN_LOW:
      case MMIO_REG.SHM_LEN_HIGH:
      case MMIO_REG.SHM_BASE_LOW:
      case MMIO_REG.SHM_BASE_HIGH:
        return 0xffff_ffff // length -1: no shared memory region (§4.2.2, SHMLen)
      case MMIO_REG.QUEUE_RESET:
        return 0
      case MMIO_REG.CONFIG_GENERATION:
        return this.generation >>> 0
      default:
        this.violation(`read of write-only or undefined register ${hex(offset)}`)
        return 0
    }
  }

  /** A register write at `offset` in the window. */
  write(offset: number, size: number, value: number): void {
    if (offset >= MMIO_REG.CONFIG) return this.writeConfig(offset - MMIO_REG.CONFIG, size, value)
    if (size !== 4 || offset % 4 !== 0) {
      return this.violation(`${size}-byte write at ${hex(offset)}: control registers are 32-bit aligned`)
    }
    const v = value >>> 0
    switch (offset) {
      case MMIO_REG.DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v
        return
      case MMIO_REG.DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v
        return
      case MMIO_REG.DRIVER_FEATURES:
        return this.writeDriverFeatures(v)
      case MMIO_REG.QUEUE_SEL:
        this.queueSel = v
        return
      case MMIO_REG.QUEUE_NUM:
      case MMIO_REG.QUEUE_READY:
      case MMIO_REG.QUEUE_DESC_LOW:
      case MMIO_REG.QUEUE_DESC_HIGH:
      case MMIO_REG.QUEUE_DRIVER_LOW:
      case MMIO_REG.QUEUE_DRIVER_HIGH:
      case MMIO_REG.QUEUE_DEVICE_LOW:
      case MMIO_REG.QUEUE_DEVICE_HIGH:
        return this.writeQueue(offset, v)
      case MMIO_REG.QUEUE_NOTIFY:
        return this.notify(v & 0xffff) // without NOTIFICATION_DATA the value is the queue index
      case MMIO_REG.INTERRUPT_ACK:
        Atomics.and(this.interruptStatus, 0, ~(v & (VIRTIO_INTERRUPT.USED_BUFFER | VIRTIO_INTERRUPT.CONFIG_CHANGE)))
        return
      case MMIO_REG.STATUS:
        return this.writeStatus(v & 0xff)
      case MMIO_REG.SHM_SEL:
        return
      case MMIO_REG.QUEUE_RESET:
        return this.violation('QueueReset written but VIRTIO_F_RING_RESET is not offered')
      default:
        return this.violation(`write of read-only or undefined register ${hex(offset)}`)
    }
  }

  /**
   * The device changed its configuration space: bump ConfigGeneration (§4.2.2) and, once the
   * driver is up, send a configuration change notification.
   */
  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0
    if (this.status & DEVICE_STATUS.DRIVER_OK) this.raise(VIRTIO_INTERRUPT.CONFIG_CHANGE)
  }

  /** Used-buffer notification for a queue (also handed to the device as activation.signalUsed). */
  signalUsed(_queue: number): void {
    if (this.activated) this.raise(VIRTIO_INTERRUPT.USED_BUFFER)
  }

  /** Device-side failure after activation (§2.1.2): DEVICE_NEEDS_RESET plus a config interrupt. */
  needsReset(why: string): void {
    log.debug(`virtio-mmio ${this.device.deviceType}: device needs reset: ${why}`)
    this.status |= DEVICE_STATUS.DEVICE_NEEDS_RESET
    if (this.status & DEVICE_STATUS.DRIVER_OK) this.raise(VIRTIO_INTERRUPT.CONFIG_CHANGE)
  }

  private raise(bit: number): void {
    const before = Atomics.or(this.interruptStatus, 0, bit)
    // The driver acks what it read before walking the rings, so a bit that is still set will be
    // seen; only a newly set bit needs a new edge.
    if (!(before & bit)) this.opts.onInterrupt?.()
  }

  private readConfig(offset: number, size: number): number {
    if (!(size === 1 || size === 2 || size === 4) || offset % size !== 0) {
      this.violation(`${size}-byte config read at ${hex(offset)}: config fields use natural, aligned 8/16/32-bit access`)
      return 0
    }
    if (offset + size > this.device.configSize) {
      this.violation(`config read at ${hex(offset)}+${size} beyond ${this.device.configSize} bytes of config space`)
      return 0
    }
    return this.device.readConfig(offset, size) >>> 0
  }

  private writeConfig(offset: number, size: number, value: number): void {
    if (!(size === 1 || size === 2 || size === 4) || offset % size !== 0) {
      return this.violation(`${size}-byte config write at ${hex(offset)}: config fields use natural, aligned 8/16/32-bit access`)
    }
    if (offset + size > this.device.configSize) {
      return this.violation(`config write at ${hex(offset)}+${size} beyond ${this.device.configSize} bytes of config space`)
    }
    this.device.writeConfig(offset, size, value >>> 0)
  }

  private writeDriverFeatures(v: number): void {
    // Features are written after DRIVER and before FEATURES_OK (§3.1.1 steps 4-5).
    if (!(this.status & DEVICE_STATUS.DRIVER) || this.status & DEVICE_STATUS.FEATURES_OK) {
      return this.violation(`DriverFeatures written in device status ${hex(this.status)}`)
    }
    if (this.driverFeaturesSel > 1) {
      if (v !== 0) this.violation(`DriverFeatures word ${this.driverFeaturesSel} set to ${hex(v)}: no such feature bits`)
      return
    }
    const shift = BigInt(32 * this.driverFeaturesSel)
    this.driverFeaturesValue = (this.driverFeaturesValue & ~(0xffff_ffffn << shift)) | (BigInt(v) << shift)
  }

  private writeQueue(offset: number, v: number): void {
    const q = this.queues[this.queueSel]
    if (!q) return this.violation(`queue register ${hex(offset)} written with QueueSel ${this.queueSel}: no such queue`)
    if (this.status & DEVICE_STATUS.DRIVER_OK) {
      return this.violation(`queue ${this.queueSel} register ${hex(offset)} written after DRIVER_OK`)
    }
    if (q.ready && !(offset === MMIO_REG.QUEUE_READY && v === 0)) {
      // §4.2.2.2: with QueueReady set the driver must not touch the queue's registers.
      return this.violation(`queue ${this.queueSel} register ${hex(offset)} written while QueueReady is 1`)
    }
    switch (offset) {
      case MMIO_REG.QUEUE_NUM: {
        const max = this.device.queueMaxSizes[this.queueSel]!
        if (v > max || !isPow2(v)) return this.violation(`QueueNum ${v} for queue ${this.queueSel}: must be a power of 2 up to ${max}`)
        q.num = v
        return
      }
      case MMIO_REG.QUEUE_READY:
        q.ready = (v & 1) === 1
        return
      case MMIO_REG.QUEUE_DESC_LOW:
        q.desc[0] = v
        return
      case MMIO_REG.QUEUE_DESC_HIGH:
        q.desc[1] = v
        return
      case MMIO_REG.QUEUE_DRIVER_LOW:
        q.driver[0] = v
        return
      case MMIO_REG.QUEUE_DRIVER_HIGH:
        q.driver[1] = v
        return
      case MMIO_REG.QUEUE_DEVICE_LOW:
        q.device[0] = v
        return
      case MMIO_REG.QUEUE_DEVICE_HIGH:
        q.device[1] = v
        return
    }
  }

  private notify(queue: number): void {
    if (!this.activated) return this.violation(`QueueNotify(${queue}) before DRIVER_OK`)
    if (!this.queues[queue]?.ready) return this.violation(`QueueNotify(${queue}): queue is not ready`)
    this.device.queueNotify(queue)
  }

  private writeStatus(v: number): void {
    if (v === 0) return this.reset()
    const old = this.status
    if (old & ~v & ~DEVICE_STATUS.DEVICE_NEEDS_RESET) {
      // §2.1.2: the driver must not clear a status bit (other than by writing 0).
      return this.violation(`device status write ${hex(v)} clears bits of ${hex(old)}`)
    }
    let next = v | (old & DEVICE_STATUS.DEVICE_NEEDS_RESET)
    if (v & DEVICE_STATUS.FEATURES_OK && !(old & DEVICE_STATUS.FEATURES_OK)) {
      const why = this.refuseFeatures()
      if (why) {
        // §3.1.1 step 6: the driver re-reads status and finds FEATURES_OK clear.
        log.debug(`virtio-mmio ${this.device.deviceType}: FEATURES_OK refused: ${why}`)
        next &= ~DEVICE_STATUS.FEATURES_OK
      }
    }
    if (v & DEVICE_STATUS.DRIVER_OK && !(old & DEVICE_STATUS.DRIVER_OK)) {
      if (!(next & DEVICE_STATUS.FEATURES_OK)) {
        this.violation('DRIVER_OK set without FEATURES_OK')
        next &= ~DEVICE_STATUS.DRIVER_OK
      } else {
        this.status = next
        this.activate()
        return
      }
    }
    this.status = next
  }

  /** Why the driver's feature set cannot be accepted, or undefined when it can. */
  private refuseFeatures(): string | undefined {
    const unknown = this.driverFeaturesValue & ~this.offeredFeatures
    if (unknown) return `driver accepted bits ${hex(unknown)} the device did not offer`
    if (!hasFeature(this.driverFeaturesValue, VIRTIO_F.VERSION_1)) return 'driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)'
    return undefined
  }

  private activate(): void {
    const queues: QueueConfig[] = []
    try {
      this.queues.forEach((q, i) => {
        const addr = (what: string, parts: [number, number]) => {
          const a = guestAddressFromParts(parts[0], parts[1])
          if (a === undefined) throw new Error(`queue ${i} ${what} address ${hex(parts[1])}:${hex(parts[0])} is beyond guest memory`)
          return a
        }
        queues.push({
          size: q.num,
          descTable: addr('descriptor', q.desc),
          availRing: addr('driver area', q.driver),
          usedRing: addr('device area', q.device),
          ready: q.ready,
        })
      })
      this.activated = true
      const epoch = ++this.epoch
      const refused = (e: unknown) => {
        if (epoch !== this.epoch || !this.activated) return
        this.activated = false
        this.needsReset(e instanceof Error ? e.message : String(e))
      }
      const started = this.device.activate({
        features: this.driverFeaturesValue,
        queues,
        signalUsed: (queue) => this.signalUsed(queue),
        interruptStatus: this.interruptStatus,
        fail: (why) => {
          if (epoch === this.epoch) this.needsReset(why)
        },
      })
      if (started instanceof Promise) started.catch(refused)
    } catch (e) {
      this.activated = false
      this.needsReset(e instanceof Error ? e.message : String(e))
    }
  }

  private reset(): void {
    this.epoch++
    if (this.activated || this.status !== 0) {
      const done = this.device.reset()
      if (done instanceof Promise) done.catch((e) => log.debug(`virtio-mmio ${this.device.deviceType}: reset failed: ${e}`))
    }
    this.activated = false
    this.status = 0
    this.deviceFeaturesSel = 0
    this.driverFeaturesSel = 0
    this.driverFeaturesValue = 0n
    this.queueSel = 0
    this.queues = this.freshQueues()
    Atomics.store(this.interruptStatus, 0, 0) // §4.2.2.1: reset clears InterruptStatus and QueueReady
  }

  private freshQueues(): QueueRegs[] {
    return this.device.queueMaxSizes.map((max) => ({ num: max, ready: false, desc: [0, 0], driver: [0, 0], device: [0, 0] }))
  }

  private violation(message: string): void {
    const m = `virtio-mmio device ${this.device.deviceType}: ${message}`
    if (this.opts.onProtocolError) this.opts.onProtocolError(m)
    else log.debug(m)
  }
}

/** memparse-style size for the kernel command line: 4K, 1M, or bytes. */
function formatSize(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}M`
  if (bytes % 1024 === 0) return `${bytes / 1024}K`
  return String(bytes)
}

/**
 * The kernel parameter announcing one device (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES,
 * drivers/virtio/virtio_mmio.c): `virtio_mmio.device=<size>@<base>:<irq>`.
 */
export function virtioMmioCmdline(w: MmioDeviceWindow): string {
  return `virtio_mmio.device=${formatSize(w.size)}@0x${w.base.toString(16)}:${w.irq}`
}
