import { describe, expect, it } from 'vitest'
import { view } from '../../../../native-shims/libc.js'
import {
  needEvent,
  SplitQueue,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  VirtqueueError,
} from '../../../../src/vm/kvm/virtio/queue.js'
import { GuestMemory, GuestMemoryError } from '../../../../src/vm/memory/guest-memory.js'
import { GuestDriver } from './driver.js'
import { guestRam, RAM_BASE, RAM_SIZE } from './setup.js'

function setup(size = 8, eventIdx = true, startIdx = 0) {
  const { ram } = guestRam()
  const driver = new GuestDriver(ram, { queueSize: size, base: RAM_BASE, size: RAM_SIZE, startIdx })
  const queue = new SplitQueue(ram, driver.config, eventIdx, { nextAvail: startIdx, nextUsed: startIdx })
  return { ram, driver, queue }
}

describe('guest RAM', () => {
  it('reads and writes little-endian values by guest address and bounds-checks them', () => {
    const { ram, sab } = guestRam(4096, 0x2000)
    ram.writeU32(0x2004, 0x11223344)
    expect(new Uint8Array(sab, 4, 4)).toEqual(Uint8Array.of(0x44, 0x33, 0x22, 0x11))
    ram.writeU64(0x2009, 0x0102030405060708n) // unaligned goes through the DataView
    expect(ram.readU64(0x2009)).toBe(0x0102030405060708n)
    ram.writeU16(0x2003, 0xbeef)
    expect(ram.readU16(0x2003)).toBe(0xbeef)
    expect(ram.contains(0x2000, 4096)).toBe(true)
    expect(ram.contains(0x1fff, 2)).toBe(false)
    expect(ram.contains(0x2000, 4097)).toBe(false)
    expect(ram.contains(2 ** 60, 1)).toBe(false)
    expect(() => ram.readU32(0x2ffe)).toThrow(GuestMemoryError)
    expect(() => ram.write(0x1000, new Uint8Array(1))).toThrow(/outside guest RAM/)
  })

  it('spans several regions and gives host addresses that alias the guest bytes', () => {
    const a = new SharedArrayBuffer(4096)
    const b = new SharedArrayBuffer(8192)
    const ram = GuestMemory.from([
      { base: 0x10000, sab: b, offset: 4096, len: 4096 },
      { base: 0, sab: a },
    ])
    ram.writeU32(0x10010, 7)
    expect(new DataView(b).getUint32(4096 + 0x10, true)).toBe(7)
    expect(ram.contains(0xfff, 2)).toBe(false) // a range may not straddle a hole
    // The host pointer aliases the guest bytes (what preadv/pwritev iovecs rely on).
    expect(new DataView(view(ram.hostAddress(0x10010, 4), 4)).getUint32(0, true)).toBe(7)
    new Uint8Array(view(ram.hostAddress(0x100, 16), 16)).fill(9)
    const back = new Uint8Array(16)
    ram.read(0x100, back)
    expect([...back]).toEqual(Array(16).fill(9))
    expect(() => ram.hostAddress(0xff8, 16)).toThrow(GuestMemoryError)
    expect(() =>
      GuestMemory.from([
        { base: 0, sab: a },
        { base: 0x800, sab: b },
      ]),
    ).toThrow(/overlap/)
  })
})

describe('split virtqueue', () => {
  it('rejects unusable configurations', () => {
    const { ram, driver } = setup()
    const c = driver.config
    expect(() => new SplitQueue(ram, { ...c, size: 6 }, true)).toThrow(VirtqueueError)
    expect(() => new SplitQueue(ram, { ...c, size: 65536 }, true)).toThrow(/power of 2/)
    expect(() => new SplitQueue(ram, { ...c, descTable: c.descTable + 8 }, true)).toThrow(/16-byte aligned/)
    expect(() => new SplitQueue(ram, { ...c, availRing: c.availRing + 1 }, true)).toThrow(/2-byte aligned/)
    expect(() => new SplitQueue(ram, { ...c, usedRing: c.usedRing + 2 }, true)).toThrow(/4-byte aligned/)
    expect(() => new SplitQueue(ram, { ...c, usedRing: RAM_BASE + RAM_SIZE - 8 }, true)).toThrow(/outside guest RAM/)
    expect(() => new SplitQueue(ram, { ...c, ready: false }, true)).toThrow(/not ready/)
  })

  it('pops chains in avail order and walks NEXT links', () => {
    const { driver, queue } = setup()
    const h1 = driver.chain([{ len: 16 }, { len: 512, write: true }, { len: 1, write: true }])
    const h2 = driver.chain([{ len: 4 }])
    expect(queue.popAvail()).toBeUndefined()
    driver.publish(h2, h1)
    expect(queue.pending()).toBe(2)
    const c2 = queue.popAvail()!
    expect(c2).toMatchObject({ head: h2, complete: true, malformed: undefined })
    expect(c2.descriptors.map((d) => d.len)).toEqual([4])
    const c1 = queue.popAvail()!
    expect(c1.descriptors.map((d) => [d.len, d.flags & VIRTQ_DESC_F_WRITE])).toEqual([
      [16, 0],
      [512, 2],
      [1, 2],
    ])
    expect(c1.descriptors.every((d) => d.inRam)).toBe(true)
    expect(queue.popAvail()).toBeUndefined()
    queue.addUsed(h2, 0)
    queue.addUsed(h1, 513)
    expect(driver.used()).toEqual([
      { id: h2, len: 0 },
      { id: h1, len: 513 },
    ])
  })

  it('keeps working across the 16-bit index wrap', () => {
    const { driver, queue } = setup(4, true, 0xfffe)
    for (let round = 0; round < 6; round++) {
      const h = driver.chain([{ len: 8 }])
      driver.publish(h)
      const c = queue.popAvail()!
      expect(c.head).toBe(h)
      queue.addUsed(h, round)
      expect(driver.used()).toEqual([{ id: h, len: round }])
    }
    expect(queue.nextAvail).toBe(4)
    expect(queue.nextUsed).toBe(4)
  })

  it('reports a loop as a malformed, incomplete chain', () => {
    const { driver, queue } = setup(8)
    const head = driver.rawChain(
      (l) => [
        { addr: RAM_BASE + 0x8000, len: 16, flags: VIRTQ_DESC_F_NEXT, next: l(1) },
        { addr: RAM_BASE + 0x8000, len: 16, flags: VIRTQ_DESC_F_NEXT, next: l(0) },
      ],
      2,
    )
    driver.publish(head)
    const c = queue.popAvail()!
    expect(c.complete).toBe(false)
    expect(c.malformed).toMatch(/longer than the queue size 8/)
    expect(c.descriptors).toHaveLength(8)
  })

  it('reports a self-loop, a link past the table and a head past the table', () => {
    const { driver, queue } = setup(8)
    const self = driver.rawChain((l) => [{ addr: RAM_BASE, len: 1, flags: VIRTQ_DESC_F_NEXT, next: l(0) }], 1)
    const bad = driver.rawChain(() => [{ addr: RAM_BASE, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 8 }], 1)
    driver.publish(self, bad, 9)
    expect(queue.popAvail()!.malformed).toMatch(/a loop/)
    expect(queue.popAvail()!.malformed).toMatch(/links to 8/)
    expect(queue.popAvail()).toMatchObject({ head: 9, descriptors: [], complete: false, malformed: expect.stringMatching(/head index 9/) })
  })

  it('flags buffers outside guest RAM and indirect descriptors but still walks the chain', () => {
    const { driver, queue } = setup(8)
    const out = driver.chain([
      { len: 16, addr: RAM_BASE + RAM_SIZE - 8 },
      { len: 1, write: true },
    ])
    const huge = driver.rawChain(() => [{ addr: 0xffff_ffff_ffff_f000n, len: 16, flags: 0 }], 1)
    const ind = driver.chain([
      { len: 16, flags: VIRTQ_DESC_F_INDIRECT },
      { len: 1, write: true },
    ])
    driver.publish(out, huge, ind)
    const c1 = queue.popAvail()!
    expect(c1).toMatchObject({ complete: true, malformed: expect.stringMatching(/outside guest RAM/) })
    expect(c1.descriptors.map((d) => d.inRam)).toEqual([false, true])
    const c2 = queue.popAvail()!
    expect(c2.malformed).toMatch(/0xfffffffffffff000\+16 is outside guest RAM/)
    expect(c2.descriptors[0]!.inRam).toBe(false)
    expect(queue.popAvail()!.malformed).toMatch(/indirect/)
  })

  it('marks the queue broken when avail.idx runs more than a ring ahead', () => {
    const { driver, queue } = setup(8)
    driver.setAvailIdx(9)
    expect(queue.popAvail()).toBeUndefined()
    expect(queue.broken).toMatch(/9 entries ahead/)
    driver.setAvailIdx(1)
    expect(queue.popAvail()).toBeUndefined() // stays broken until reset
  })

  it('needEvent follows vring_need_event, including the wrap', () => {
    expect(needEvent(0, 1, 0)).toBe(true)
    expect(needEvent(1, 1, 0)).toBe(false) // wants an interrupt once idx passes 1
    expect(needEvent(1, 2, 0)).toBe(true)
    expect(needEvent(5, 3, 0)).toBe(false)
    expect(needEvent(0xffff, 0, 0xfffe)).toBe(true)
    expect(needEvent(0xffff, 0xffff, 0xfffe)).toBe(false)
    expect(needEvent(3, 5, 5)).toBe(false)
  })

  it('EVENT_IDX: notifies only when used.idx passes used_event', () => {
    const { driver, queue } = setup(8, true)
    const use = () => {
      const h = driver.chain([{ len: 1 }])
      driver.publish(h)
      queue.addUsed(queue.popAvail()!.head, 0)
      driver.used()
    }
    expect(queue.needsNotification()).toBe(false) // nothing added
    driver.setUsedEvent(0)
    use() // used.idx 0 -> 1 passes used_event 0
    expect(queue.needsNotification()).toBe(true)
    driver.setUsedEvent(2)
    use() // 1 -> 2 does not pass 2
    expect(queue.needsNotification()).toBe(false)
    use() // 2 -> 3 passes 2
    expect(queue.needsNotification()).toBe(true)
    driver.setUsedEvent(2) // stale used_event: the driver is not interested
    use()
    use()
    expect(queue.needsNotification()).toBe(false)
    driver.setUsedEvent(4) // 3 -> 5 crossed 4 in one batch
    expect(queue.needsNotification()).toBe(false) // already checked up to 5
    driver.setUsedEvent(5)
    use()
    expect(queue.needsNotification()).toBe(true)
  })

  it('EVENT_IDX: publishes avail_event and reports chains that raced the re-arm', () => {
    const { driver, queue } = setup(8, true)
    driver.publish(driver.chain([{ len: 1 }]), driver.chain([{ len: 1 }]))
    queue.popAvail()
    expect(queue.enableNotification()).toBe(true) // one still pending
    expect(driver.availEvent()).toBe(1)
    queue.popAvail()
    expect(queue.enableNotification()).toBe(false)
    expect(driver.availEvent()).toBe(2)
    expect(driver.usedFlags()).toBe(0)
  })

  it('without EVENT_IDX: uses the NO_INTERRUPT and NO_NOTIFY flags', () => {
    const { driver, queue } = setup(8, false)
    const h = driver.chain([{ len: 1 }])
    driver.publish(h)
    queue.disableNotification()
    expect(driver.usedFlags()).toBe(VIRTQ_USED_F_NO_NOTIFY)
    queue.addUsed(queue.popAvail()!.head, 0)
    driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT)
    expect(queue.needsNotification()).toBe(false)
    driver.setAvailFlags(0)
    queue.addUsed(h, 0)
    expect(queue.needsNotification()).toBe(true)
    expect(queue.enableNotification()).toBe(false)
    expect(driver.usedFlags()).toBe(0)
    expect(driver.availEvent()).toBe(0) // not written without EVENT_IDX
  })
})
