import { afterAll, describe, expect, it } from 'vitest'
import { FileBacking } from '../../../../src/vm/kvm/virtio/block/backing.js'
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_OUT } from '../../../../src/vm/kvm/virtio/block/constants.js'
import { VirtioBlkDevice } from '../../../../src/vm/kvm/virtio/block/device.js'
import { blkQueueHandler } from '../../../../src/vm/kvm/virtio/block/handler.js'
import { type Clock, Throttle, TokenBucket } from '../../../../src/vm/kvm/virtio/block/throttle.js'
import { GuestDriver } from './driver.js'
import { FEATURES, guestRam, makeDisk, RAM_BASE, RAM_SIZE, tempDir } from './setup.js'

class FakeClock implements Clock {
  t = 1000
  now() {
    return this.t
  }
  advance(ms: number) {
    this.t += ms
  }
}

describe('token bucket', () => {
  it('starts full, delays by the debt, refills at its rate up to the burst', () => {
    const c = new FakeClock()
    const b = new TokenBucket({ rate: 100, burst: 10 }, c) // 100 tokens/s = one per 10 ms
    for (let i = 0; i < 10; i++) expect(b.take(1)).toBe(0)
    expect(b.take(1)).toBeCloseTo(10) // one token short: 10 ms
    expect(b.take(2)).toBeCloseTo(30) // three short now
    c.advance(30)
    expect(b.available()).toBeCloseTo(0)
    c.advance(10_000)
    expect(b.available()).toBe(10) // capped at the burst
    expect(b.take(25)).toBeCloseTo(150) // bigger than the burst: delayed, never refused
  })

  it('ignores a clock that goes backwards', () => {
    const c = new FakeClock()
    const b = new TokenBucket({ rate: 1000, burst: 5 }, c)
    b.take(5)
    c.advance(-100)
    expect(b.available()).toBe(0)
    c.advance(101)
    expect(b.available()).toBeCloseTo(1)
  })

  it('validates its options', () => {
    expect(() => new TokenBucket({ rate: 0, burst: 1 })).toThrow(RangeError)
    expect(() => new TokenBucket({ rate: 1, burst: -1 })).toThrow(RangeError)
    expect(() => new TokenBucket({ rate: Infinity, burst: 1 })).toThrow(RangeError)
  })
})

describe('throttle', () => {
  it('waits for the slower of the IOPS and bytes buckets', () => {
    const c = new FakeClock()
    const t = new Throttle({ iops: { rate: 10, burst: 2 }, bytesPerSec: { rate: 4096, burst: 4096 } }, c)
    expect(t.admit(1024)).toBe(0)
    expect(t.admit(1024)).toBe(0)
    expect(t.admit(1024)).toBeCloseTo(100) // IOPS: one request over → 100 ms
    expect(t.admit(4096)).toBeCloseTo(750) // bytes: 3072 in debt → 750 ms beats IOPS' 200 ms
    expect(t.admit(0)).toBeCloseTo(300) // a flush costs an op, no bytes
    const unlimited = new Throttle({}, c)
    expect(unlimited.admit(1 << 30)).toBe(0)
  })
})

describe('throttled device', () => {
  const tmp = tempDir()
  afterAll(tmp.cleanup)

  it('delays valid requests by the throttle and charges nothing for rejected ones', () => {
    const path = makeDisk(tmp.dir, 1 << 20)
    const clock = new FakeClock()
    const slept: number[] = []
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path }, throttle: { iops: { rate: 100, burst: 2 }, bytesPerSec: { rate: 65536, burst: 8192 } } })
    const { ram } = guestRam()
    const driver = new GuestDriver(ram, { queueSize: 64, base: RAM_BASE, size: RAM_SIZE })
    const handler = blkQueueHandler(dev.queueSetup(ram, [driver.config], FEATURES), {
      ram,
      backing: FileBacking.open(path),
      notify: () => {},
      clock,
      sleep: (ms) => {
        slept.push(ms)
        clock.advance(ms) // time passes while the blk thread sleeps
        return true
      },
    })
    // Rejected requests (past the capacity, unknown type) come first: they must not use tokens.
    const bad = Array.from({ length: 5 }, () => driver.read(1 << 30, 512))
    const unsupp = driver.request(99, 0, [])
    driver.publish(...bad.map((r) => r.head), unsupp.head)
    handler.drain()
    expect(bad.map((r) => driver.status(r))).toEqual(Array(5).fill(VIRTIO_BLK_S_IOERR))
    expect(slept).toEqual([])
    // Two requests fit both bursts; the third is one op short (10 ms at 100/s) and 512 bytes
    // short (7.8 ms at 64 KiB/s). During that 10 ms sleep the byte bucket earns 655.36 bytes, so the
    // fourth (4096 bytes) is 3952.64 bytes short: 60.3 ms, more than its 10 ms for the op.
    const ok = [driver.read(0, 4096), driver.read(8, 4096), driver.read(16, 512), driver.read(17, 4096)]
    driver.publish(...ok.map((r) => r.head))
    handler.drain()
    expect(ok.map((r) => driver.status(r))).toEqual(Array(4).fill(VIRTIO_BLK_S_OK))
    expect(slept).toHaveLength(2)
    expect(slept[0]).toBeCloseTo(10)
    expect(slept[1]).toBeCloseTo(((4096 + 512 - 655.36) * 1000) / 65536, 6)
    expect(handler.stats.throttledMs).toBeCloseTo(slept[0]! + slept[1]!)
    driver.used()
    // A write past the capacity is rejected before the throttle: no wait.
    const before = slept.length
    const w = driver.request(VIRTIO_BLK_T_OUT, 1 << 30, [{ len: 512, data: new Uint8Array(512) }])
    driver.publish(w.head)
    handler.drain()
    expect(driver.status(w)).toBe(VIRTIO_BLK_S_IOERR)
    expect(slept.length).toBe(before)
  })
})
