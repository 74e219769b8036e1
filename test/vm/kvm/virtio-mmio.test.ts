import { describe, expect, it } from 'vitest'
import { virtioMmioWindow } from '../../../src/vm/kvm/memory/layout.js'
import {
  featureBit,
  MMIO_MAGIC,
  MMIO_REG as R,
  DEVICE_STATUS as S,
  VIRTIO_F,
  VIRTIO_INTERRUPT,
  type VirtioActivation,
  type VirtioDevice,
  VirtioMmioTransport,
  virtioMmioCmdline,
} from '../../../src/vm/kvm/virtio/mmio.js'
import { SplitQueue } from '../../../src/vm/kvm/virtio/queue.js'
import { GuestMemory } from '../../../src/vm/memory/guest-memory.js'

const DEVICE_F_SIZE = 0 // a made-up device feature bit 0

class FakeDevice implements VirtioDevice {
  readonly deviceType = 3
  readonly features = featureBit(DEVICE_F_SIZE) | featureBit(VIRTIO_F.EVENT_IDX)
  readonly queueMaxSizes = [256, 64]
  readonly configSize = 8
  config = new Uint8Array([0x50, 0x00, 0x19, 0x00, 0x01, 0x00, 0x00, 0x00]) // cols 80, rows 25, max ports 1
  activations: VirtioActivation[] = []
  notified: number[] = []
  resets = 0
  refuse: string | undefined
  refuseLater: string | undefined
  readConfig(offset: number, size: 1 | 2 | 4): number {
    const dv = new DataView(this.config.buffer)
    return size === 1 ? dv.getUint8(offset) : size === 2 ? dv.getUint16(offset, true) : dv.getUint32(offset, true)
  }
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    const dv = new DataView(this.config.buffer)
    if (size === 1) dv.setUint8(offset, value)
    else if (size === 2) dv.setUint16(offset, value, true)
    else dv.setUint32(offset, value, true)
  }
  activate(a: VirtioActivation): void | Promise<void> {
    if (this.refuse) throw new Error(this.refuse)
    this.activations.push(a)
    if (this.refuseLater) return Promise.reject(new Error(this.refuseLater))
  }
  reset(): void {
    this.resets++
  }
  queueNotify(queue: number): void {
    this.notified.push(queue)
  }
}

function setup() {
  const dev = new FakeDevice()
  const errors: string[] = []
  let interrupts = 0
  const t = new VirtioMmioTransport(dev, { onInterrupt: () => interrupts++, onProtocolError: (m) => errors.push(m) })
  const rd = (off: number) => t.read(off, 4)
  const wr = (off: number, v: number) => t.write(off, 4, v)
  return { dev, t, errors, rd, wr, interrupts: () => interrupts }
}

const QUEUE_ADDRS = [
  { desc: 0x10_0000, avail: 0x10_1000, used: 0x10_2000 },
  { desc: 0x20_0000, avail: 0x20_1000, used: 0x1_0000_3000 }, // a used ring above 4 GiB: high half used
]

/** Linux's virtio_mmio probe + virtio_dev_probe + vm_find_vqs, step by step. */
function driverInit(s: ReturnType<typeof setup>, accept: bigint, queueSizes = [128, 64]) {
  const { rd, wr } = s
  expect(rd(R.MAGIC_VALUE)).toBe(MMIO_MAGIC)
  expect(rd(R.VERSION)).toBe(2)
  expect(rd(R.DEVICE_ID)).toBe(3)
  wr(R.STATUS, 0) // reset
  wr(R.STATUS, S.ACKNOWLEDGE)
  wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
  wr(R.DEVICE_FEATURES_SEL, 1)
  let offered = BigInt(rd(R.DEVICE_FEATURES)) << 32n
  wr(R.DEVICE_FEATURES_SEL, 0)
  offered |= BigInt(rd(R.DEVICE_FEATURES))
  const features = accept & offered
  wr(R.DRIVER_FEATURES_SEL, 1)
  wr(R.DRIVER_FEATURES, Number(accept >> 32n))
  wr(R.DRIVER_FEATURES_SEL, 0)
  wr(R.DRIVER_FEATURES, Number(accept & 0xffff_ffffn))
  wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
  const featuresOk = (rd(R.STATUS) & S.FEATURES_OK) !== 0
  if (!featuresOk) return { offered, features, featuresOk }
  queueSizes.forEach((size, q) => {
    wr(R.QUEUE_SEL, q)
    expect(rd(R.QUEUE_READY)).toBe(0)
    expect(rd(R.QUEUE_NUM_MAX)).toBeGreaterThanOrEqual(size)
    wr(R.QUEUE_NUM, size)
    const a = QUEUE_ADDRS[q]!
    wr(R.QUEUE_DESC_LOW, a.desc % 2 ** 32)
    wr(R.QUEUE_DESC_HIGH, Math.floor(a.desc / 2 ** 32))
    wr(R.QUEUE_DRIVER_LOW, a.avail % 2 ** 32)
    wr(R.QUEUE_DRIVER_HIGH, Math.floor(a.avail / 2 ** 32))
    wr(R.QUEUE_DEVICE_LOW, a.used % 2 ** 32)
    wr(R.QUEUE_DEVICE_HIGH, Math.floor(a.used / 2 ** 32))
    wr(R.QUEUE_READY, 1)
    expect(rd(R.QUEUE_READY)).toBe(1)
  })
  wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
  return { offered, features, featuresOk }
}

describe('virtio-mmio transport', () => {
  it('goes through the whole driver init sequence and activates the device', () => {
    const s = setup()
    const { offered, featuresOk } = driverInit(s, featureBit(VIRTIO_F.VERSION_1) | featureBit(VIRTIO_F.EVENT_IDX) | featureBit(DEVICE_F_SIZE))
    expect(offered).toBe(featureBit(VIRTIO_F.VERSION_1) | featureBit(VIRTIO_F.EVENT_IDX) | featureBit(DEVICE_F_SIZE))
    expect(featuresOk).toBe(true)
    expect(s.rd(R.STATUS)).toBe(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
    expect(s.errors).toEqual([])
    expect(s.dev.activations).toHaveLength(1)
    const a = s.dev.activations[0]!
    expect(a.features).toBe(featureBit(VIRTIO_F.VERSION_1) | featureBit(VIRTIO_F.EVENT_IDX) | featureBit(DEVICE_F_SIZE))
    expect(a.queues).toEqual([
      { size: 128, descTable: 0x10_0000, availRing: 0x10_1000, usedRing: 0x10_2000, ready: true },
      { size: 64, descTable: 0x20_0000, availRing: 0x20_1000, usedRing: 0x1_0000_3000, ready: true },
    ])
    expect(s.t.isActivated).toBe(true)

    // Kick, used-buffer interrupt, ack.
    s.wr(R.QUEUE_NOTIFY, 1)
    expect(s.dev.notified).toEqual([1])
    a.signalUsed(1)
    expect(s.interrupts()).toBe(1)
    a.signalUsed(0) // bit already set: no second edge needed
    expect(s.interrupts()).toBe(1)
    expect(s.rd(R.INTERRUPT_STATUS)).toBe(VIRTIO_INTERRUPT.USED_BUFFER)
    s.wr(R.INTERRUPT_ACK, VIRTIO_INTERRUPT.USED_BUFFER)
    expect(s.rd(R.INTERRUPT_STATUS)).toBe(0)
    // A device thread (a blk thread) sets the bit itself through the shared word.
    Atomics.or(a.interruptStatus, 0, VIRTIO_INTERRUPT.USED_BUFFER)
    expect(s.rd(R.INTERRUPT_STATUS)).toBe(VIRTIO_INTERRUPT.USED_BUFFER)
  })

  it('hands queue configurations the virtqueue accepts', () => {
    const s = setup()
    driverInit(s, featureBit(VIRTIO_F.VERSION_1) | featureBit(VIRTIO_F.EVENT_IDX), [128])
    const a = s.dev.activations[0]!
    const mem = GuestMemory.allocate([{ base: 0, size: 4 * 1024 * 1024 }])
    const q = new SplitQueue(mem, a.queues[0]!, (a.features & featureBit(VIRTIO_F.EVENT_IDX)) !== 0n)
    expect(q.size).toBe(128)
    expect(q.pending()).toBe(0)
    expect(a.queues[1]!.ready).toBe(false) // the driver set up only one queue
  })

  it('reads the device config space at 0x100 with natural widths, and versions it', () => {
    const s = setup()
    expect(s.t.read(R.CONFIG, 2)).toBe(80)
    expect(s.t.read(R.CONFIG + 2, 2)).toBe(25)
    expect(s.t.read(R.CONFIG + 4, 4)).toBe(1)
    expect(s.t.read(R.CONFIG + 1, 1)).toBe(0)
    s.t.write(R.CONFIG, 2, 132)
    expect(s.dev.config[0]).toBe(132)
    expect(s.t.read(R.CONFIG + 1, 2)).toBe(0) // misaligned 16-bit access
    expect(s.t.read(R.CONFIG + 6, 4)).toBe(0) // beyond configSize
    expect(s.errors).toHaveLength(2)

    const g0 = s.rd(R.CONFIG_GENERATION)
    s.t.configChanged()
    expect(s.rd(R.CONFIG_GENERATION)).toBe(g0 + 1)
    expect(s.interrupts()).toBe(0) // no notifications before DRIVER_OK
    driverInit(s, featureBit(VIRTIO_F.VERSION_1))
    s.t.configChanged()
    expect(s.rd(R.CONFIG_GENERATION)).toBe(g0 + 2)
    expect(s.rd(R.INTERRUPT_STATUS)).toBe(VIRTIO_INTERRUPT.CONFIG_CHANGE)
    expect(s.interrupts()).toBe(1)
  })

  it('refuses FEATURES_OK for bits the device did not offer, or without VERSION_1', () => {
    const unknown = setup()
    const r1 = driverInit(unknown, featureBit(VIRTIO_F.VERSION_1) | featureBit(5))
    expect(r1.featuresOk).toBe(false)
    expect(unknown.rd(R.STATUS) & S.FEATURES_OK).toBe(0)
    const legacy = setup()
    expect(driverInit(legacy, featureBit(DEVICE_F_SIZE)).featuresOk).toBe(false)
    // DRIVER_OK cannot follow a refused FEATURES_OK.
    legacy.wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.DRIVER_OK)
    expect(legacy.rd(R.STATUS) & S.DRIVER_OK).toBe(0)
    expect(legacy.dev.activations).toEqual([])
    expect(legacy.errors.join('\n')).toMatch(/DRIVER_OK set without FEATURES_OK/)
  })

  it('ignores and reports writes in the wrong state', () => {
    const s = setup()
    driverInit(s, featureBit(VIRTIO_F.VERSION_1))
    const errs = () => s.errors.splice(0)
    // features after FEATURES_OK
    s.wr(R.DRIVER_FEATURES, 0xffff_ffff)
    expect(s.t.driverFeatures).toBe(featureBit(VIRTIO_F.VERSION_1))
    expect(errs()).toEqual([expect.stringMatching(/DriverFeatures written in device status 0xf/)])
    // queue registers after DRIVER_OK (and while ready)
    s.wr(R.QUEUE_SEL, 0)
    s.wr(R.QUEUE_NUM, 16)
    expect(s.dev.activations[0]!.queues[0]!.size).toBe(128)
    expect(errs()).toEqual([expect.stringMatching(/written after DRIVER_OK/)])
    // clearing status bits
    s.wr(R.STATUS, S.ACKNOWLEDGE)
    expect(s.rd(R.STATUS)).toBe(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
    expect(errs()).toEqual([expect.stringMatching(/clears bits/)])
    // narrow control register access, writes to read-only registers, reads of write-only ones
    expect(s.t.read(R.STATUS, 1)).toBe(0)
    s.t.write(R.STATUS, 2, 0)
    s.wr(R.MAGIC_VALUE, 0)
    expect(s.rd(R.QUEUE_NOTIFY)).toBe(0)
    expect(errs()).toHaveLength(4)
    expect(s.rd(R.STATUS) & S.DRIVER_OK).toBe(S.DRIVER_OK)
    // notifying a queue that does not exist
    s.wr(R.QUEUE_NOTIFY, 7)
    expect(s.dev.notified).toEqual([])
    expect(errs()).toEqual([expect.stringMatching(/QueueNotify\(7\)/)])
  })

  it('checks queue setup before DRIVER_OK', () => {
    const s = setup()
    s.wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
    s.wr(R.QUEUE_NOTIFY, 0)
    expect(s.errors.splice(0)).toEqual([expect.stringMatching(/before DRIVER_OK/)])
    s.wr(R.QUEUE_SEL, 0)
    s.wr(R.QUEUE_NUM, 512) // above QueueNumMax 256
    s.wr(R.QUEUE_NUM, 100) // not a power of 2
    expect(s.errors.splice(0)).toHaveLength(2)
    s.wr(R.QUEUE_READY, 1)
    s.wr(R.QUEUE_DESC_LOW, 0x1000) // while ready
    expect(s.errors.splice(0)).toEqual([expect.stringMatching(/while QueueReady is 1/)])
    s.wr(R.QUEUE_READY, 0)
    s.wr(R.QUEUE_DESC_LOW, 0x1000)
    expect(s.errors).toEqual([])
    s.wr(R.QUEUE_SEL, 5)
    expect(s.rd(R.QUEUE_NUM_MAX)).toBe(0) // no such queue
  })

  it('resets on status 0: device reset, interrupt status and queues cleared', () => {
    const s = setup()
    driverInit(s, featureBit(VIRTIO_F.VERSION_1))
    s.dev.activations[0]!.signalUsed(0)
    s.wr(R.STATUS, 0)
    expect(s.dev.resets).toBe(1)
    expect(s.rd(R.STATUS)).toBe(0)
    expect(s.rd(R.INTERRUPT_STATUS)).toBe(0)
    s.wr(R.QUEUE_SEL, 0)
    expect(s.rd(R.QUEUE_READY)).toBe(0)
    expect(s.t.isActivated).toBe(false)
    // and the driver can come back
    driverInit(s, featureBit(VIRTIO_F.VERSION_1))
    expect(s.dev.activations).toHaveLength(2)
  })

  it('sets DEVICE_NEEDS_RESET when the device refuses activation', () => {
    const s = setup()
    s.dev.refuse = 'queue 0 descriptor table is outside guest RAM'
    driverInit(s, featureBit(VIRTIO_F.VERSION_1))
    expect(s.rd(R.STATUS) & S.DEVICE_NEEDS_RESET).toBe(S.DEVICE_NEEDS_RESET)
    expect(s.rd(R.INTERRUPT_STATUS)).toBe(VIRTIO_INTERRUPT.CONFIG_CHANGE)
    expect(s.t.isActivated).toBe(false)
    s.wr(R.STATUS, 0)
    expect(s.rd(R.STATUS)).toBe(0)
  })

  it('fails a device whose asynchronous start is rejected, or that reports a fault later', async () => {
    const s = setup()
    s.dev.refuseLater = 'blk thread could not open the disk'
    driverInit(s, featureBit(VIRTIO_F.VERSION_1))
    expect(s.t.isActivated).toBe(true)
    await new Promise((r) => setImmediate(r))
    expect(s.t.isActivated).toBe(false)
    expect(s.rd(R.STATUS) & S.DEVICE_NEEDS_RESET).toBe(S.DEVICE_NEEDS_RESET)

    const s2 = setup()
    driverInit(s2, featureBit(VIRTIO_F.VERSION_1))
    const old = s2.dev.activations[0]!
    s2.wr(R.STATUS, 0)
    old.fail('stale fault from before the reset') // ignored: that activation is gone
    expect(s2.rd(R.STATUS)).toBe(0)
    driverInit(s2, featureBit(VIRTIO_F.VERSION_1))
    s2.dev.activations[1]!.fail('used ring write outside guest RAM')
    expect(s2.rd(R.STATUS) & S.DEVICE_NEEDS_RESET).toBe(S.DEVICE_NEEDS_RESET)
  })

  it('announces itself on the kernel command line', () => {
    expect(virtioMmioCmdline(virtioMmioWindow(0))).toBe('virtio_mmio.device=4K@0xd0000000:5')
    expect(virtioMmioCmdline(virtioMmioWindow(3))).toBe('virtio_mmio.device=4K@0xd0003000:10')
  })
})
