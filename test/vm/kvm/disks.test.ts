// The kvm backend's disk wiring (src/vm/kvm/virtio/block/disks.ts) without KVM: the devices land on the
// virtio-mmio windows after the console with their IRQs, eventfds and kernel parameters in disk
// order; and a guest driven through the MMIO bus is served by the blk thread through the
// ioeventfd and irqfd alone, as KVM routes them (the fake VM below does that routing).
import fs from 'node:fs'
import { afterAll, describe, expect, it, vi } from 'vitest'
import * as libc from '../../../native-shims/libc.js'
import type { DiskSpec } from '../../../src/vm/disk.js'
import { Bus } from '../../../src/vm/kvm/io-bus.js'
import { virtioMmioWindow } from '../../../src/vm/kvm/memory/layout.js'
import { VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from '../../../src/vm/kvm/virtio/block/constants.js'
import { attachDisks, type DiskEventfds, diskThrottle, type KvmDisk, type KvmDisks, MAX_KVM_DISKS } from '../../../src/vm/kvm/virtio/block/disks.js'
import { MMIO_MAGIC, MMIO_REG as R, DEVICE_STATUS as S, VIRTIO_F } from '../../../src/vm/kvm/virtio/mmio.js'
import { GuestDriver } from './blk/driver.js'
import { guestRam, makeDisk, pattern, RAM_BASE, tempDir, threadSkipReason } from './blk/setup.js'

const tmp = tempDir()
afterAll(tmp.cleanup)

const skipThread = threadSkipReason()
if (skipThread) console.warn(`[ktstr tests] skipping the kvm disk tests that start blk threads: ${skipThread}`)

const ONE = new BigUint64Array([1n])
const openFds = () => fs.readdirSync('/proc/self/fd').length
const isOpen = (fd: number) => {
  try {
    fs.fstatSync(fd)
    return true
  } catch (e) {
    if ((e as { code?: string }).code === 'EBADF') return false
    throw e
  }
}

/**
 * KVM's side of the eventfds: a guest MMIO write matching a registered ioeventfd signals it
 * inside "KVM" and never reaches the VMM's bus; an irqfd write is an interrupt the test can count.
 */
class FakeVm implements DiskEventfds {
  readonly ioeventfds: { fd: number; addr: number; len: number; datamatch: number | undefined }[] = []
  readonly irqfds: { fd: number; gsi: number }[] = []
  inKernelKicks = 0

  constructor(readonly mmio: Bus) {}

  addIoeventfd(fd: number, addr: number, len: 1 | 2 | 4 | 8, datamatch?: number): void {
    this.ioeventfds.push({ fd, addr, len, datamatch })
  }

  addIrqfd(fd: number, gsi: number): void {
    this.irqfds.push({ fd, gsi })
  }

  /** A 32-bit guest write. */
  write(addr: number, value: number): void {
    const ev = this.ioeventfds.find((e) => e.addr === addr && e.len === 4 && (e.datamatch === undefined || e.datamatch === value))
    if (ev) {
      this.inKernelKicks++
      libc.write(ev.fd, ONE, 8)
      return
    }
    this.mmio.access({ kind: 'mmio', write: true, size: 4, addr, value: BigInt(value) })
  }

  read(addr: number, size = 4): number {
    return Number(this.mmio.access({ kind: 'mmio', write: false, size, addr, value: 0n }).value)
  }

  /** Interrupts raised on `gsi` since the last call (reads the irqfd counter). */
  interrupts(gsi: number): number {
    const irq = this.irqfds.find((i) => i.gsi === gsi)
    if (!irq) throw new Error(`no irqfd on GSI ${gsi}`)
    const v = new BigUint64Array(1)
    try {
      libc.read(irq.fd, v, 8)
      return Number(v[0])
    } catch (e) {
      if ((e as { code?: string }).code === 'EAGAIN') return 0
      throw e
    }
  }
}

const disk = (p: string, opts: Partial<DiskSpec> = {}): DiskSpec => ({ path: p, readOnly: false, ...opts })

/** A bus that already has the virtio-console on window 0, as launchKvm sets it up. */
function busWithConsole(): Bus {
  const mmio = new Bus('mmio')
  const w0 = virtioMmioWindow(0)
  mmio.add('virtio-console', w0.base, w0.size, { read: () => 0, write: () => {} })
  return mmio
}

describe('diskThrottle', () => {
  it('maps iops=N and bps=N to token buckets holding a tenth of a second (QEMU without -max)', () => {
    expect(diskThrottle({})).toBeUndefined()
    expect(diskThrottle({ bps: 1048576 })).toEqual({ bytesPerSec: { rate: 1048576, burst: 104857.6 } })
    expect(diskThrottle({ iops: 200, bps: 10_000 })).toEqual({ iops: { rate: 200, burst: 20 }, bytesPerSec: { rate: 10_000, burst: 1000 } })
    // A low IOPS limit still lets one request through at once.
    expect(diskThrottle({ iops: 3 })).toEqual({ iops: { rate: 3, burst: 1 } })
  })
})

describe('attachDisks', () => {
  it('puts disk i on virtio-mmio window 1 + i with its IRQ, ioeventfd, irqfd and kernel parameter, in order', async () => {
    const rw = makeDisk(tmp.dir, 1 << 20, 'layout-rw.img')
    const ro = makeDisk(tmp.dir, 64 << 10, 'layout-ro.img')
    const mmio = busWithConsole()
    const vm = new FakeVm(mmio)
    const { ram } = guestRam()
    const d = attachDisks([disk(rw), disk(ro, { readOnly: true, iops: 50 })], { vm, ram, mmio })
    try {
      expect(d.disks.map((x) => [x.window.index, x.window.base, x.window.irq])).toEqual([
        [1, 0xd000_1000, 6],
        [2, 0xd000_2000, 7],
      ])
      expect(d.cmdline).toEqual(['virtio_mmio.device=4K@0xd0001000:6', 'virtio_mmio.device=4K@0xd0002000:7'])
      // Kicks of queue 0 (QueueNotify at +0x50, value 0) go to each disk's kick fd; its irqfd is on its IRQ.
      expect(vm.ioeventfds).toEqual(d.disks.map((x) => ({ fd: x.kickFd, addr: x.window.base + 0x50, len: 4, datamatch: 0 })))
      expect(vm.irqfds).toEqual(d.disks.map((x) => ({ fd: x.irqFd, gsi: x.window.irq })))
      expect(new Set(d.disks.flatMap((x) => [x.kickFd, x.irqFd])).size).toBe(4)

      // The bus routes each window to its own virtio-blk transport.
      for (const x of d.disks) {
        expect(vm.read(x.window.base + R.MAGIC_VALUE)).toBe(MMIO_MAGIC)
        expect(vm.read(x.window.base + R.DEVICE_ID)).toBe(2)
      }
      const [a, b] = d.disks as [KvmDisk, KvmDisk]
      expect(vm.read(a.window.base + R.CONFIG)).toBe(2048) // capacity in sectors: 1 MiB
      expect(vm.read(b.window.base + R.CONFIG)).toBe(128) // 64 KiB
      const features = (x: KvmDisk) => {
        vm.write(x.window.base + R.DEVICE_FEATURES_SEL, 0)
        return vm.read(x.window.base + R.DEVICE_FEATURES)
      }
      expect(features(a) & (1 << VIRTIO_BLK_F_RO)).toBe(0)
      expect(features(b) & (1 << VIRTIO_BLK_F_RO)).toBe(1 << VIRTIO_BLK_F_RO)
      expect(a.device.options.throttle).toBeUndefined()
      expect(b.device.options.throttle).toEqual({ iops: { rate: 50, burst: 5 } })
      // The VMM opened (and locked) the image; the blk thread borrows that descriptor.
      expect(b.device.options.backing).toEqual({ kind: 'file', path: ro, readOnly: true, fd: b.fileFd })
    } finally {
      await d.close()
    }
    for (const x of d.disks) {
      expect(isOpen(x.kickFd)).toBe(false)
      expect(isOpen(x.irqFd)).toBe(false)
      expect(isOpen(x.fileFd)).toBe(false)
    }
    await d.close() // idempotent
  })

  it('attaches no device and adds no parameter without disks', async () => {
    const mmio = busWithConsole()
    const vm = new FakeVm(mmio)
    const d = attachDisks([], { vm, ram: guestRam().ram, mmio })
    expect(d.disks).toEqual([])
    expect(d.cmdline).toEqual([])
    expect(vm.ioeventfds).toEqual([])
    await d.close()
  })

  it(`refuses more than ${MAX_KVM_DISKS} disks, and leaves nothing open when a disk cannot be attached`, () => {
    const p = makeDisk(tmp.dir, 4096, 'many.img')
    const mmio = busWithConsole()
    const before = openFds()
    expect(() =>
      attachDisks(
        Array.from({ length: MAX_KVM_DISKS + 1 }, () => disk(p)),
        { vm: new FakeVm(mmio), ram: guestRam().ram, mmio },
      ),
    ).toThrow(`the kvm backend attaches at most 7 disks (one virtio-mmio interrupt each); got 8`)
    expect(() => attachDisks([disk(p), disk(`${tmp.dir}/missing.img`)], { vm: new FakeVm(mmio), ram: guestRam().ram, mmio })).toThrow(/missing.img does not exist/)
    expect(openFds()).toBe(before)
  })
})

/** The guest driver's probe (virtio 1.2 §3.1.1) over the bus, without EVENT_IDX: every completion interrupts. */
function probe(vm: FakeVm, x: KvmDisk, driver: GuestDriver): void {
  const reg = (r: number) => x.window.base + r
  vm.write(reg(R.STATUS), 0)
  vm.write(reg(R.STATUS), S.ACKNOWLEDGE | S.DRIVER)
  vm.write(reg(R.DEVICE_FEATURES_SEL), 0)
  const lo = vm.read(reg(R.DEVICE_FEATURES))
  vm.write(reg(R.DEVICE_FEATURES_SEL), 1)
  const hi = vm.read(reg(R.DEVICE_FEATURES))
  vm.write(reg(R.DRIVER_FEATURES_SEL), 0)
  vm.write(reg(R.DRIVER_FEATURES), (lo & ~(1 << VIRTIO_F.EVENT_IDX)) >>> 0)
  vm.write(reg(R.DRIVER_FEATURES_SEL), 1)
  vm.write(reg(R.DRIVER_FEATURES), hi)
  vm.write(reg(R.STATUS), S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
  expect(vm.read(reg(R.STATUS)) & S.FEATURES_OK).toBe(S.FEATURES_OK)
  const c = driver.config
  vm.write(reg(R.QUEUE_SEL), 0)
  vm.write(reg(R.QUEUE_NUM), c.size)
  vm.write(reg(R.QUEUE_DESC_LOW), c.descTable)
  vm.write(reg(R.QUEUE_DRIVER_LOW), c.availRing)
  vm.write(reg(R.QUEUE_DEVICE_LOW), c.usedRing)
  vm.write(reg(R.QUEUE_READY), 1)
  vm.write(reg(R.STATUS), S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
  expect(x.transport.isActivated).toBe(true)
}

const pause = new Int32Array(new SharedArrayBuffer(4))

/** Polls without returning to the event loop: what arrives meanwhile did not need the main thread. */
function spinUntil<T>(what: string, probe: () => T | undefined, ms = 10_000): T {
  const end = Date.now() + ms
  for (;;) {
    const v = probe()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} with the main thread busy`)
    Atomics.wait(pause, 0, 0, 1)
  }
}

/**
 * Publishes the requests and kicks (a guest write to QueueNotify), then, with the main thread kept
 * busy, waits for the completions and the interrupt: the blk thread is reached through the ioeventfd
 * and raises the irqfd itself. Acks the interrupt like vm_interrupt.
 */
function submit(vm: FakeVm, x: KvmDisk, driver: GuestDriver, ...heads: number[]): { id: number; len: number }[] {
  const before = driver.usedIdx()
  driver.publish(...heads)
  vm.write(x.window.base + R.QUEUE_NOTIFY, 0)
  spinUntil('the used entries', () => (((driver.usedIdx() - before) & 0xffff) >= heads.length ? true : undefined))
  expect(spinUntil(`the interrupt of ${x.spec.path}`, () => vm.interrupts(x.window.irq) || undefined)).toBe(1)
  expect(vm.read(x.window.base + R.INTERRUPT_STATUS)).toBe(1) // used buffer
  vm.write(x.window.base + R.INTERRUPT_ACK, 1)
  return driver.used()
}

describe.skipIf(skipThread !== undefined)('attachDisks: a guest served through ioeventfd and irqfd', () => {
  function setup(specs: DiskSpec[]): { vm: FakeVm; disks: KvmDisks; drivers: GuestDriver[] } {
    const mmio = busWithConsole()
    const vm = new FakeVm(mmio)
    const { ram } = guestRam()
    const disks = attachDisks(specs, { vm, ram, mmio })
    // 8 MiB of guest RAM: 2 MiB of rings and buffers per disk.
    const drivers = specs.map((_, i) => new GuestDriver(ram, { queueSize: 64, base: RAM_BASE + i * (2 << 20), size: 2 << 20 }))
    disks.disks.forEach((x, i) => probe(vm, x, drivers[i]!))
    return { vm, disks, drivers }
  }

  it('writes land in the host file and read back; the read-only disk refuses writes; close() stops the blk threads', async () => {
    const rwPath = makeDisk(tmp.dir, 1 << 20, 'served-rw.img')
    const roPath = makeDisk(tmp.dir, 1 << 20, 'served-ro.img')
    const roBefore = fs.readFileSync(roPath)
    const { vm, disks, drivers } = setup([disk(rwPath), disk(roPath, { readOnly: true })])
    const [rw, ro] = disks.disks as [KvmDisk, KvmDisk]
    const [drw, dro] = drivers as [GuestDriver, GuestDriver]
    const notified = disks.disks.map((x) => vi.spyOn(x.device, 'queueNotify'))
    try {
      await Promise.all(disks.disks.map((x) => x.device.whenStarted()))
      const data = pattern(777_000, 8192)
      const w = drw.write(16, data, 3)
      expect(submit(vm, rw, drw, w.head)).toEqual([{ id: w.head, len: 1 }])
      expect(drw.status(w)).toBe(VIRTIO_BLK_S_OK)
      const r = drw.read(16, 8192, 2)
      expect(submit(vm, rw, drw, r.head)).toEqual([{ id: r.head, len: 8193 }])
      expect(drw.status(r)).toBe(VIRTIO_BLK_S_OK)
      expect(drw.data(r)).toEqual(data)

      const bad = dro.write(0, pattern(1, 4096))
      const good = dro.read(2, 1024)
      expect(submit(vm, ro, dro, bad.head, good.head)).toEqual([
        { id: bad.head, len: 1 },
        { id: good.head, len: 1025 },
      ])
      expect(dro.status(bad)).toBe(VIRTIO_BLK_S_IOERR)
      expect(dro.status(good)).toBe(VIRTIO_BLK_S_OK)
      expect(dro.data(good)).toEqual(new Uint8Array(roBefore.subarray(1024, 2048)))

      // Every kick went through the ioeventfd, none through the VMM; no interrupt is left over and no device failed.
      expect(vm.inKernelKicks).toBe(3)
      for (const n of notified) expect(n).not.toHaveBeenCalled()
      for (const x of disks.disks) expect(x.transport.deviceStatus & S.DEVICE_NEEDS_RESET).toBe(0)
      expect(vm.interrupts(rw.window.irq) + vm.interrupts(ro.window.irq)).toBe(0)
    } finally {
      await disks.close()
    }
    for (const x of disks.disks) expect(x.device.active).toBe(false)
    // The host file: the written sectors hold the data, everything around them is untouched.
    const expected = Buffer.from(pattern(0, 1 << 20))
    expected.set(pattern(777_000, 8192), 16 * 512)
    expect(fs.readFileSync(rwPath).equals(expected)).toBe(true)
    expect(fs.readFileSync(roPath).equals(roBefore)).toBe(true)
  })

  it('bps=N paces writes (the burst is a tenth of a second)', async () => {
    const p = makeDisk(tmp.dir, 1 << 20, 'throttled.img')
    const bps = 256 << 10
    const { vm, disks, drivers } = setup([disk(p, { bps })])
    const [x] = disks.disks as [KvmDisk]
    const [d] = drivers as [GuestDriver]
    try {
      await x.device.whenStarted()
      const t0 = performance.now()
      const w = d.write(0, pattern(5, 128 << 10), 8)
      submit(vm, x, d, w.head)
      const ms = performance.now() - t0
      expect(d.status(w)).toBe(VIRTIO_BLK_S_OK)
      // 128 KiB minus a 25.6 KiB burst at 256 KiB/s: 400 ms.
      expect(ms).toBeGreaterThan(350)
      expect(ms).toBeLessThan(5000)
    } finally {
      await disks.close()
    }
    expect(
      fs
        .readFileSync(p)
        .subarray(0, 128 << 10)
        .equals(pattern(5, 128 << 10)),
    ).toBe(true)
  })
})
