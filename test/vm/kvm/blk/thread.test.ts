// The device through its real blk thread: real eventfds for the kick and the irqfd, guest RAM
// as an mmap'd region (and as a SharedArrayBuffer), a real temp file as the FileBacking.
// kick → used entry → irqfd readable; EVENT_IDX suppression; reset and teardown never hang; and
// the whole path once through the virtio-mmio transport's registers.
import fs from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { EFD_CLOEXEC, EFD_NONBLOCK, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../native-shims/constants.js'
import * as libc from '../../../../native-shims/libc.js'
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP } from '../../../../src/vm/kvm/virtio/block/constants.js'
import { type BlkDeviceOptions, VirtioBlkDevice } from '../../../../src/vm/kvm/virtio/block/device.js'
import { MMIO_REG as R, DEVICE_STATUS as S, type VirtioActivation, VirtioMmioTransport } from '../../../../src/vm/kvm/virtio/mmio.js'
import { GuestMemory, type SharedGuestRegion } from '../../../../src/vm/memory/guest-memory.js'
import { GuestDriver } from './driver.js'
import { FEATURES, makeDisk, pattern, RAM_BASE, RAM_SIZE, tempDir, threadSkipReason } from './setup.js'

const skip = threadSkipReason()
if (skip) console.warn(`[ktstr tests] skipping the blk thread tests: ${skip}`)

const tmp = tempDir()
afterAll(tmp.cleanup)

const ONE = new BigUint64Array([1n])
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Reads the (non-blocking) irqfd: the counter, or 0 when not signalled. */
function irqCount(fd: number): number {
  const v = new BigUint64Array(1)
  try {
    libc.read(fd, v, 8)
    return Number(v[0])
  } catch (e) {
    if ((e as { code?: string }).code === 'EAGAIN') return 0
    throw e
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = probe()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(2)
  }
}

function guestRegion(kind: 'mmap' | 'sab'): { region: SharedGuestRegion; unmap: () => void } {
  if (kind === 'sab') return { region: { base: RAM_BASE, sab: new SharedArrayBuffer(RAM_SIZE) }, unmap: () => {} }
  const addr = libc.mmap(RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
  return { region: { base: RAM_BASE, addr, len: RAM_SIZE }, unmap: () => libc.munmap(addr, RAM_SIZE) }
}

interface Setup {
  dev: VirtioBlkDevice
  driver: GuestDriver
  kick: () => void
  irqFd: number
  isr: Int32Array
  failures: string[]
  signalled: () => number
  diskPath: string
  close: () => Promise<void>
}

/** A device with a kick eventfd and (unless `noIrqFd`) an irqfd, activated the way the transport does. */
async function start(kind: 'mmap' | 'sab', opts: Partial<BlkDeviceOptions> & { noIrqFd?: boolean } = {}): Promise<Setup> {
  const { noIrqFd, ...devOpts } = opts
  const { region, unmap } = guestRegion(kind)
  const ram = GuestMemory.from([region])
  const driver = new GuestDriver(ram, { queueSize: 128, base: RAM_BASE, size: RAM_SIZE })
  const diskPath = makeDisk(tmp.dir, 1 << 20, `thread-${kind}-${Math.random().toString(36).slice(2)}.img`)
  const kickFd = libc.eventfd(0, EFD_CLOEXEC)
  const irqFd = libc.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
  const dev = new VirtioBlkDevice({ backing: { kind: 'file', path: diskPath }, serial: 'thread-test', ram, kickFd, ...(noIrqFd ? {} : { irqFd }), ...devOpts })
  const isr = new Int32Array(new SharedArrayBuffer(4))
  const failures: string[] = []
  let signalled = 0
  const activation: VirtioActivation = {
    features: FEATURES,
    queues: [driver.config],
    signalUsed: () => signalled++,
    interruptStatus: isr,
    fail: (why) => failures.push(why),
  }
  dev.activate(activation)
  await dev.whenStarted()
  return {
    dev,
    driver,
    kick: () => libc.write(kickFd, ONE, 8),
    irqFd,
    isr,
    failures,
    signalled: () => signalled,
    diskPath,
    close: async () => {
      await dev.close()
      libc.close(kickFd)
      libc.close(irqFd)
      unmap()
    },
  }
}

describe.skipIf(skip !== undefined)('virtio-blk blk thread', () => {
  it.each(['mmap', 'sab'] as const)('kick → used entry → irqfd, with guest RAM as %s', async (kind) => {
    const s = await start(kind)
    try {
      const { driver } = s
      driver.setUsedEvent(0)
      const data = pattern(4242, 8192)
      const w = driver.write(100, data, 4)
      const r = driver.read(100, 8192, 3)
      const g = driver.getId()
      const u = driver.request(77, 0, [])
      driver.publish(w.head, r.head, g.head, u.head)
      s.kick()
      expect(await waitFor('the irqfd', () => irqCount(s.irqFd) || undefined)).toBe(1)
      expect(Atomics.load(s.isr, 0)).toBe(1) // InterruptStatus: used buffer
      const used = await waitFor('4 used entries', () => (driver.usedIdx() === 4 ? driver.used() : undefined))
      expect(used).toEqual([
        { id: w.head, len: 1 },
        { id: r.head, len: 8193 },
        { id: g.head, len: 21 },
        { id: u.head, len: 1 },
      ])
      expect([driver.status(w), driver.status(r), driver.status(g), driver.status(u)]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP])
      expect(driver.data(r)).toEqual(data)
      expect(new TextDecoder().decode(driver.data(g)).replace(/\0+$/, '')).toBe('thread-test')
      expect(new Uint8Array(fs.readFileSync(s.diskPath).subarray(100 * 512, 100 * 512 + 8192))).toEqual(data)
      expect(driver.availEvent()).toBe(4) // re-armed: kick me at the next chain

      // The driver has not acked InterruptStatus yet: a new completion needs no new edge.
      driver.reset()
      driver.setUsedEvent(4)
      const again = driver.read(0, 512)
      driver.publish(again.head)
      s.kick()
      await waitFor('the 5th completion', () => (driver.usedIdx() === 5 ? true : undefined))
      await sleep(50)
      expect(irqCount(s.irqFd)).toBe(0)
      driver.used()

      // Acked (InterruptACK clears the bit): the next completion raises the irqfd again.
      driver.reset()
      Atomics.store(s.isr, 0, 0)
      driver.setUsedEvent(5)
      const bad = driver.read(1 << 20, 512)
      driver.publish(bad.head)
      s.kick()
      await waitFor('the second irqfd', () => irqCount(s.irqFd) || undefined)
      expect(driver.used()).toEqual([{ id: bad.head, len: 1 }])
      expect(driver.status(bad)).toBe(VIRTIO_BLK_S_IOERR)
      expect(s.failures).toEqual([])
    } finally {
      await s.close()
    }
  })

  it('EVENT_IDX: no interrupt while used_event is not reached', async () => {
    const s = await start('sab')
    try {
      const { driver } = s
      driver.setUsedEvent(1) // interrupt only once used.idx passes 1, i.e. after the 2nd completion
      driver.publish(driver.read(0, 512).head)
      s.kick()
      await waitFor('the first completion', () => (driver.usedIdx() === 1 ? true : undefined))
      await sleep(100)
      expect(irqCount(s.irqFd)).toBe(0)
      driver.publish(driver.read(1, 512).head)
      s.kick()
      await waitFor('the irqfd', () => irqCount(s.irqFd) || undefined)
      expect(driver.used().map((e) => e.len)).toEqual([513, 513])
    } finally {
      await s.close()
    }
  })

  it('without an irqfd the blk thread asks the owner to signal (activation.signalUsed)', async () => {
    const s = await start('sab', { noIrqFd: true })
    try {
      s.driver.publish(s.driver.read(3, 1024).head)
      s.kick()
      await waitFor('signalUsed', () => (s.signalled() > 0 ? true : undefined))
      expect(s.driver.used()).toEqual([expect.objectContaining({ len: 1025 })])
      expect(irqCount(s.irqFd)).toBe(0)
      expect(Atomics.load(s.isr, 0)).toBe(0) // the transport's signalUsed sets it, not the blk thread
    } finally {
      await s.close()
    }
  })

  it('reset() wakes the blk thread out of a throttle sleep and returns at once; close() gives its stats', async () => {
    const s = await start('sab', { throttle: { iops: { rate: 0.1, burst: 1 } } })
    const { driver } = s
    driver.publish(driver.read(0, 512).head, driver.read(1, 512).head) // the 2nd waits 10 s
    s.kick()
    await waitFor('the first completion', () => (driver.usedIdx() >= 1 ? true : undefined))
    const t0 = Date.now()
    s.dev.reset()
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(driver.usedIdx()).toBe(2) // the popped request was finished before reset returned
    const result = await s.dev.close()
    expect(result?.stats.completed).toBe(2)
    expect(result?.stats.throttledMs).toBeGreaterThan(9000)
    expect(result?.queueState).toEqual({ nextAvail: 2, nextUsed: 2 })
    await s.close()
  })

  it('an idle blk thread blocked in read() stops promptly, and the device can be activated again', async () => {
    const s = await start('mmap')
    await sleep(50) // the blk thread is now blocked in read(kickFd)
    const t0 = Date.now()
    s.dev.reset()
    expect(Date.now() - t0).toBeLessThan(2000)
    expect((await s.dev.close())?.stats.completed).toBe(0)
    // A new driver session on fresh rings.
    s.driver.reset()
    const driver = new GuestDriver(s.driver.ram, { queueSize: 64, base: RAM_BASE + (1 << 20), size: 1 << 20 })
    s.dev.activate({ features: FEATURES, queues: [driver.config], signalUsed: () => {}, interruptStatus: s.isr, fail: () => {} })
    await s.dev.whenStarted()
    const r = driver.read(2, 512)
    driver.publish(r.head)
    s.kick()
    await waitFor('the completion', () => (driver.usedIdx() === 1 ? true : undefined))
    expect(driver.data(r)).toEqual(pattern(1024, 512))
    await s.close()
  })

  it('a backing that cannot be opened by the blk thread fails the activation', async () => {
    const diskPath = makeDisk(tmp.dir, 4096, 'vanishing.img')
    const { region } = guestRegion('sab')
    const ram = GuestMemory.from([region])
    const driver = new GuestDriver(ram, { queueSize: 16, base: RAM_BASE, size: RAM_SIZE })
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path: diskPath }, ram })
    fs.rmSync(diskPath)
    const failures: string[] = []
    dev.activate({
      features: FEATURES,
      queues: [driver.config],
      signalUsed: () => {},
      interruptStatus: new Int32Array(new SharedArrayBuffer(4)),
      fail: (w) => failures.push(w),
    })
    await expect(dev.whenStarted()).rejects.toThrow(/could not start: disk image .*vanishing.img does not exist/)
    await waitFor('activation.fail', () => (failures.length ? true : undefined))
    expect(failures[0]).toMatch(/vanishing.img does not exist/)
    await dev.close()
  })

  it('end to end through the virtio-mmio transport registers', async () => {
    const { region } = guestRegion('sab')
    const ram = GuestMemory.from([region])
    const driver = new GuestDriver(ram, { queueSize: 64, base: RAM_BASE, size: RAM_SIZE })
    const diskPath = makeDisk(tmp.dir, 1 << 20, 'mmio.img')
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path: diskPath }, ram })
    let irqs = 0
    const t = new VirtioMmioTransport(dev, { onInterrupt: () => irqs++ })
    const wr = (off: number, v: number) => t.write(off, 4, v)
    expect(t.read(R.DEVICE_ID, 4)).toBe(2)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
    wr(R.DEVICE_FEATURES_SEL, 0)
    const lo = t.read(R.DEVICE_FEATURES, 4)
    wr(R.DEVICE_FEATURES_SEL, 1)
    const hi = t.read(R.DEVICE_FEATURES, 4)
    expect(hi & 1).toBe(1) // VERSION_1
    wr(R.DRIVER_FEATURES_SEL, 0)
    wr(R.DRIVER_FEATURES, lo)
    wr(R.DRIVER_FEATURES_SEL, 1)
    wr(R.DRIVER_FEATURES, hi)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
    expect(t.read(R.STATUS, 4) & S.FEATURES_OK).toBe(S.FEATURES_OK)
    expect(t.read(R.CONFIG, 4)).toBe(2048) // capacity (low word)
    expect(t.read(R.CONFIG + 12, 4)).toBe(126) // seg_max
    wr(R.QUEUE_SEL, 0)
    expect(t.read(R.QUEUE_NUM_MAX, 4)).toBe(256)
    const c = driver.config
    wr(R.QUEUE_NUM, c.size)
    wr(R.QUEUE_DESC_LOW, c.descTable)
    wr(R.QUEUE_DRIVER_LOW, c.availRing)
    wr(R.QUEUE_DEVICE_LOW, c.usedRing)
    wr(R.QUEUE_READY, 1)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
    expect(t.isActivated).toBe(true)
    await dev.whenStarted()

    const w = driver.write(7, pattern(9, 1024), 2)
    const r = driver.read(7, 1024)
    driver.publish(w.head, r.head)
    wr(R.QUEUE_NOTIFY, 0) // no ioeventfd here: the transport calls queueNotify
    await waitFor('the interrupt', () => (irqs > 0 ? true : undefined))
    expect(t.read(R.INTERRUPT_STATUS, 4)).toBe(1)
    wr(R.INTERRUPT_ACK, 1)
    await waitFor('2 used entries', () => (driver.usedIdx() === 2 ? true : undefined))
    expect(driver.data(r)).toEqual(pattern(9, 1024))
    expect(t.deviceStatus & S.DEVICE_NEEDS_RESET).toBe(0)

    wr(R.STATUS, 0) // device reset: the blk thread is quiesced before this returns
    expect(t.deviceStatus).toBe(0)
    expect(dev.active).toBe(false)
    expect((await dev.close())?.stats.completed).toBe(2)
  })

  it('a driver that breaks the ring gets DEVICE_NEEDS_RESET', async () => {
    const ram = GuestMemory.from([guestRegion('sab').region])
    const driver = new GuestDriver(ram, { queueSize: 16, base: RAM_BASE, size: RAM_SIZE })
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path: makeDisk(tmp.dir, 4096, 'broken-ring.img') }, ram })
    const t = new VirtioMmioTransport(dev)
    const wr = (off: number, v: number) => t.write(off, 4, v)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
    wr(R.DRIVER_FEATURES_SEL, 1)
    wr(R.DRIVER_FEATURES, 1) // VERSION_1
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
    const c = driver.config
    for (const [reg, v] of [
      [R.QUEUE_SEL, 0],
      [R.QUEUE_NUM, c.size],
      [R.QUEUE_DESC_LOW, c.descTable],
      [R.QUEUE_DRIVER_LOW, c.availRing],
      [R.QUEUE_DEVICE_LOW, c.usedRing],
      [R.QUEUE_READY, 1],
    ])
      wr(reg!, v!)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
    await dev.whenStarted()
    driver.setAvailIdx(40) // 40 chains "available" in a 16-entry ring
    wr(R.QUEUE_NOTIFY, 0)
    await waitFor('DEVICE_NEEDS_RESET', () => (t.deviceStatus & S.DEVICE_NEEDS_RESET ? true : undefined))
    expect(driver.usedIdx()).toBe(0)
    await dev.close()
  })
})
