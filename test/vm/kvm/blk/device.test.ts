// The virtio-blk device's queue handler (what its blk thread runs) behind the test driver: config space, the request types,
// and every malformed shape the validator must turn into S_IOERR / S_UNSUPP / used length 0.
import fs from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { FileBacking } from '../../../../src/vm/kvm/virtio/block/backing.js'
import {
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_ID_BLOCK,
} from '../../../../src/vm/kvm/virtio/block/constants.js'
import { BlkActivationError, VirtioBlkDevice } from '../../../../src/vm/kvm/virtio/block/device.js'
import { FaultyBacking } from '../../../../src/vm/kvm/virtio/block/faulty-backing.js'
import { blkQueueHandler } from '../../../../src/vm/kvm/virtio/block/handler.js'
import { featureBit, MMIO_REG as R, DEVICE_STATUS as S, VIRTIO_F, VirtioMmioTransport } from '../../../../src/vm/kvm/virtio/mmio.js'
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../../src/vm/kvm/virtio/queue.js'
import { GuestMemory } from '../../../../src/vm/memory/guest-memory.js'
import { GuestDriver } from './driver.js'
import { FEATURES, makeDisk, pattern, RAM_BASE, RAM_SIZE, rig, tempDir } from './setup.js'

const tmp = tempDir()
afterAll(tmp.cleanup)
const DISK_SIZE = (1 << 20) + 100 // a trailing partial sector is not exposed
const CAPACITY = 2048
let n = 0
const freshDisk = () => makeDisk(tmp.dir, DISK_SIZE, `disk-${n++}.img`)
const bit = featureBit

describe('virtio-blk device: identity and config space', () => {
  it('offers the blk features and lays out struct virtio_blk_config', () => {
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path: freshDisk() }, segMax: 100, sizeMax: 65536, blkSize: 4096 })
    expect(dev.deviceType).toBe(VIRTIO_ID_BLOCK)
    expect(dev.queueMaxSizes).toEqual([256])
    expect(dev.capacity).toBe(BigInt(CAPACITY))
    for (const f of [VIRTIO_F.EVENT_IDX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH]) {
      expect(dev.features & bit(f)).toBe(bit(f))
    }
    expect(dev.features & bit(VIRTIO_BLK_F_RO)).toBe(0n)
    expect(dev.features & bit(VIRTIO_F.INDIRECT_DESC)).toBe(0n)
    expect(new VirtioMmioTransport(dev).offeredFeatures & bit(VIRTIO_F.VERSION_1)).toBe(bit(VIRTIO_F.VERSION_1)) // the transport's bit
    expect(dev.configSize).toBe(96)
    // Read the way the transport does: aligned 1/2/4-byte fields, little-endian.
    const cfg = new Uint8Array(dev.configSize)
    const dv = new DataView(cfg.buffer)
    for (let off = 0; off < cfg.length; off += 4) dv.setUint32(off, dev.readConfig(off, 4), true)
    expect(dv.getBigUint64(0, true)).toBe(BigInt(CAPACITY))
    expect(dv.getUint32(8, true)).toBe(65536)
    expect(dv.getUint32(12, true)).toBe(100)
    expect(dv.getUint32(16, true)).toBe(0) // geometry
    expect(dv.getUint32(20, true)).toBe(4096)
    expect([...cfg.subarray(24)].every((b) => b === 0)).toBe(true)
    expect(dev.readConfig(0, 2)).toBe(CAPACITY & 0xffff)
    expect(dev.readConfig(1, 1)).toBe(CAPACITY >> 8)
    expect(dev.readConfig(22, 2)).toBe(0)
    expect(dev.readConfig(200, 4)).toBe(0)
    dev.writeConfig(0, 4, 1234) // read-only fields: ignored
    expect(dev.readConfig(0, 4)).toBe(CAPACITY)
  })

  it('offers RO for a read-only backing and rejects bad options and activations', () => {
    const path = freshDisk()
    const ro = new VirtioBlkDevice({ backing: { kind: 'file', path, readOnly: true } })
    expect(ro.features & bit(VIRTIO_BLK_F_RO)).toBe(bit(VIRTIO_BLK_F_RO))
    expect(() => new VirtioBlkDevice({ backing: { kind: 'file', path }, queueSize: 100 })).toThrow(RangeError)
    expect(() => new VirtioBlkDevice({ backing: { kind: 'file', path }, queueSize: 16, segMax: 15 })).toThrow(/seg_max 15/)
    expect(() => new VirtioBlkDevice({ backing: { kind: 'file', path }, sizeMax: 512 })).toThrow(/size_max/)
    expect(() => new VirtioBlkDevice({ backing: { kind: 'file', path }, blkSize: 1000 })).toThrow(/blk_size/)
    expect(() => new VirtioBlkDevice({ backing: { kind: 'file', path: `${tmp.dir}/missing.img` } })).toThrow(/does not exist/)
    const r = rig(path)
    // Feature negotiation is the transport's (virtio-mmio.test.ts); the device checks the queue.
    expect(() => r.device.queueSetup(r.ram, [], FEATURES)).toThrow(BlkActivationError)
    expect(() => r.device.queueSetup(r.ram, [{ ...r.driver.config, size: 512 }], FEATURES)).toThrow(/exceeds the maximum/)
    expect(() => r.device.queueSetup(r.ram, [{ ...r.driver.config, descTable: 1 }], FEATURES)).toThrow(/queue unusable/)
  })
})

describe('virtio-blk device: requests', () => {
  it('reads sectors into scattered guest buffers', () => {
    const { driver, run } = rig(freshDisk())
    const req = driver.read(3, 3 * 512, 3)
    expect(run(req.head)).toEqual([{ id: req.head, len: 3 * 512 + 1 }])
    expect(driver.status(req)).toBe(VIRTIO_BLK_S_OK)
    expect(driver.data(req)).toEqual(pattern(3 * 512, 3 * 512))
  })

  it('writes land in the file and read back; the last sector is reachable', () => {
    const path = freshDisk()
    const { driver, run } = rig(path)
    const bytes = pattern(999_999, 4096)
    const w = driver.write(CAPACITY - 8, bytes, 4)
    expect(run(w.head)).toEqual([{ id: w.head, len: 1 }])
    expect(driver.status(w)).toBe(VIRTIO_BLK_S_OK)
    expect(new Uint8Array(fs.readFileSync(path).subarray((CAPACITY - 8) * 512, CAPACITY * 512))).toEqual(bytes)
    const r = driver.read(CAPACITY - 8, 4096, 2)
    run(r.head)
    expect(driver.data(r)).toEqual(bytes)
  })

  it('FLUSH syncs the backing and GET_ID returns the serial', () => {
    const { driver, run, backing } = rig(freshDisk(), { serial: 'ktstr-blk-test', wrap: (b) => new FaultyBacking(b) })
    const f = driver.flush()
    const g = driver.getId()
    const long = driver.getId(64)
    expect(run(f.head, g.head, long.head)).toEqual([
      { id: f.head, len: 1 },
      { id: g.head, len: 21 },
      { id: long.head, len: 21 },
    ])
    expect([driver.status(f), driver.status(g), driver.status(long)]).toEqual([0, 0, 0])
    expect((backing as FaultyBacking).events.map((e) => e.op)).toEqual(['sync'])
    const id = new Uint8Array(20)
    id.set(new TextEncoder().encode('ktstr-blk-test'))
    expect(driver.data(g)).toEqual(id)
    const serial20 = rig(freshDisk(), { serial: 'abcdefghijklmnopqrstuvwxyz' })
    const g20 = serial20.driver.getId()
    serial20.run(g20.head)
    expect(new TextDecoder().decode(serial20.driver.data(g20))).toBe('abcdefghijklmnopqrst')
  })

  it('completes many requests in one drain and handles a full ring repeatedly', () => {
    const { driver, run } = rig(freshDisk(), { queueSize: 16 })
    for (let round = 0; round < 5; round++) {
      const reqs = Array.from({ length: 5 }, (_, i) => driver.read(round * 10 + i, 512))
      const used = run(...reqs.map((r) => r.head))
      expect(used.map((u) => u.id)).toEqual(reqs.map((r) => r.head))
      reqs.forEach((r, i) => expect(driver.data(r)).toEqual(pattern((round * 10 + i) * 512, 512)))
      driver.reset()
    }
  })
})

describe('virtio-blk device: malformed and invalid requests (validated before any I/O)', () => {
  const path = freshDisk()
  const original = fs.readFileSync(path)
  const r = rig(path, { segMax: 4, sizeMax: 8192, queueSize: 32, wrap: (b) => new FaultyBacking(b) })
  const { driver } = r
  const io = () => (r.backing as FaultyBacking).events.length
  const out = (len: number) => ({ len, data: new Uint8Array(len) })
  const inn = (len: number) => ({ len, write: true })
  const hdr = (type: number, sector: number | bigint) => ({ len: 16, data: driver.header(type, sector) })
  const status = () => {
    const gpa = driver.alloc(1, 1)
    driver.ram.write(gpa, Uint8Array.of(0xff))
    return gpa
  }
  const statusByte = (gpa: number) => {
    const b = new Uint8Array(1)
    driver.ram.read(gpa, b)
    return b[0]
  }
  /** Runs one chain; returns [used len, status byte at `st`]. */
  const one = (head: number, st: number) => {
    const before = io()
    const used = r.run(head)
    expect(used).toHaveLength(1)
    expect(io()).toBe(before) // no backing call for a rejected request
    return [used[0]!.len, statusByte(st)]
  }
  const chainWithStatus = (parts: Parameters<typeof driver.chain>[0]) => {
    const st = status()
    return { head: driver.chain([...parts, { len: 1, write: true, addr: st }]), st }
  }
  const IOERR: [number, number] = [1, VIRTIO_BLK_S_IOERR]
  const cases: [string, () => { head: number; st: number }, [number, number]][] = [
    ['read with a device-readable data buffer', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), out(512)]), IOERR],
    ['write with a device-writable data buffer', () => chainWithStatus([hdr(VIRTIO_BLK_T_OUT, 0), inn(512)]), IOERR],
    ['zero-length data descriptor', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), inn(512), inn(0)]), IOERR],
    ['more data descriptors than seg_max', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), ...Array.from({ length: 5 }, () => inn(512))]), IOERR],
    ['a data descriptor over size_max', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), inn(8192 + 512)]), IOERR],
    ['data length not a multiple of 512', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), inn(500)]), IOERR],
    ['read past the capacity', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, CAPACITY - 1), inn(1024)]), IOERR],
    ['write starting at the capacity', () => chainWithStatus([hdr(VIRTIO_BLK_T_OUT, CAPACITY), out(512)]), IOERR],
    ['sector near 2^64 (no overflow)', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ffffn), inn(512)]), IOERR],
    ['read without data', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0)]), IOERR],
    ['flush with data', () => chainWithStatus([hdr(VIRTIO_BLK_T_FLUSH, 0), inn(512)]), IOERR],
    ['GET_ID buffer shorter than 20 bytes', () => chainWithStatus([hdr(VIRTIO_BLK_T_GET_ID, 0), inn(10)]), IOERR],
    ['GET_ID into a device-readable buffer', () => chainWithStatus([hdr(VIRTIO_BLK_T_GET_ID, 0), out(20)]), IOERR],
    ['header device-writable', () => chainWithStatus([{ len: 16, write: true }, inn(512)]), IOERR],
    ['header of 8 bytes', () => chainWithStatus([{ len: 8, data: new Uint8Array(8) }, inn(512)]), IOERR],
    ['status only, no header', () => chainWithStatus([]), IOERR],
    ['data buffer outside guest RAM', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), { len: 512, write: true, addr: RAM_BASE + RAM_SIZE }]), IOERR],
    ['header outside guest RAM', () => chainWithStatus([{ len: 16, addr: RAM_BASE - 16 }, inn(512)]), IOERR],
    ['indirect descriptor (not offered)', () => chainWithStatus([hdr(VIRTIO_BLK_T_IN, 0), { len: 16, flags: VIRTQ_DESC_F_INDIRECT }]), IOERR],
    [
      'status of 2 bytes',
      () => {
        const st = status()
        return { head: driver.chain([hdr(VIRTIO_BLK_T_IN, 0), inn(512), { len: 2, write: true, addr: st }]), st }
      },
      IOERR,
    ],
    ['unknown type 2 (SCSI)', () => chainWithStatus([hdr(2, 0), inn(512)]), [1, VIRTIO_BLK_S_UNSUPP]],
    ['DISCARD (not offered)', () => chainWithStatus([hdr(11, 0), out(16)]), [1, VIRTIO_BLK_S_UNSUPP]],
    ['type 0xffffffff', () => chainWithStatus([hdr(0xffff_ffff, 0)]), [1, VIRTIO_BLK_S_UNSUPP]],
    [
      'status device-readable',
      () => {
        const st = status()
        return { head: driver.chain([hdr(VIRTIO_BLK_T_IN, 0), inn(512), { len: 1, addr: st }]), st }
      },
      [0, 0xff],
    ],
    [
      'status of 0 bytes',
      () => {
        const st = status()
        return { head: driver.chain([hdr(VIRTIO_BLK_T_IN, 0), inn(512), { len: 0, write: true, addr: st }]), st }
      },
      [0, 0xff],
    ],
    ['status outside guest RAM', () => ({ head: driver.chain([hdr(VIRTIO_BLK_T_IN, 0), { len: 1, write: true, addr: RAM_BASE + RAM_SIZE }]), st: status() }), [0, 0xff]],
    [
      'a descriptor loop',
      () => {
        const st = status()
        const h = driver.alloc(16)
        driver.ram.write(h, driver.header(VIRTIO_BLK_T_IN, 0))
        const head = driver.rawChain(
          (l) => [
            { addr: h, len: 16, flags: VIRTQ_DESC_F_NEXT, next: l(1) },
            { addr: st, len: 1, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, next: l(0) },
          ],
          2,
        )
        return { head, st }
      },
      [0, 0xff],
    ],
    [
      'a link past the descriptor table',
      () => {
        const st = status()
        const head = driver.rawChain(() => [{ addr: st, len: 1, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, next: 40 }], 1)
        return { head, st }
      },
      [0, 0xff],
    ],
  ]

  it.each(cases)('%s', (_name, build, expected) => {
    const { head, st } = build()
    expect(one(head, st)).toEqual(expected)
  })

  it('writes to a read-only disk fail without touching the file', () => {
    const roPath = freshDisk()
    const before = fs.readFileSync(roPath)
    const ro = rig(roPath, { readOnly: true, wrap: (b) => new FaultyBacking(b) })
    const w = ro.driver.write(0, new Uint8Array(1024).fill(7))
    const rd = ro.driver.read(0, 512)
    expect(ro.run(w.head, rd.head)).toEqual([
      { id: w.head, len: 1 },
      { id: rd.head, len: 513 },
    ])
    expect(ro.driver.status(w)).toBe(VIRTIO_BLK_S_IOERR)
    expect(ro.driver.status(rd)).toBe(VIRTIO_BLK_S_OK)
    expect((ro.backing as FaultyBacking).events.map((e) => e.op)).toEqual(['read'])
    expect(fs.readFileSync(roPath).equals(before)).toBe(true)
  })

  it('a head index past the table is returned used with length 0', () => {
    const used = r.run(77)
    expect(used).toEqual([{ id: 77, len: 0 }])
  })

  it('after all of that the queue still serves valid requests and the disk is unchanged', () => {
    const ok = driver.read(5, 2048, 4)
    expect(r.run(ok.head)).toEqual([{ id: ok.head, len: 2049 }])
    expect(driver.data(ok)).toEqual(pattern(5 * 512, 2048))
    expect(fs.readFileSync(path).equals(original)).toBe(true)
    expect(r.handler.stats.dropped).toBe(6)
    expect(r.handler.stats.unsupported).toBe(3)
  })
})

describe('virtio-blk device: notifications', () => {
  it('signals once per drained batch, and only when used_event asks for it', () => {
    const { driver, handler, notifications } = rig(freshDisk())
    driver.setUsedEvent(0)
    driver.publish(driver.read(0, 512).head, driver.read(1, 512).head)
    handler.drain()
    expect(notifications()).toBe(1)
    expect(driver.availEvent()).toBe(2) // kick me for the next one
    driver.used()
    driver.setUsedEvent(5) // the driver wants to hear only after the 6th completion
    driver.publish(driver.read(2, 512).head)
    handler.drain()
    expect(notifications()).toBe(1)
    driver.publish(driver.read(3, 512).head, driver.read(4, 512).head, driver.read(5, 512).head)
    handler.drain()
    expect(notifications()).toBe(2)
    expect(handler.stats.notifications).toBe(2)
  })
})

describe("virtio-blk device over the VMM's GuestMemory", () => {
  it('runs with GuestMemory as its GuestRam (two regions, rings in the upper one)', () => {
    const path = freshDisk()
    const mem = GuestMemory.allocate(
      [
        { base: 0, size: 1 << 20 },
        { base: RAM_BASE * 4, size: 4 << 20 },
      ],
      { shared: true },
    )
    const driver = new GuestDriver(mem, { queueSize: 64, base: RAM_BASE * 4, size: 4 << 20 })
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path } })
    const backing = FileBacking.open(path)
    const handler = blkQueueHandler(dev.queueSetup(mem, [driver.config], FEATURES), { ram: mem, backing, notify: () => {} })
    const data = pattern(1, 4096)
    const w = driver.write(40, data, 3)
    const r = driver.read(40, 4096, 2)
    driver.publish(w.head, r.head)
    handler.drain()
    expect(driver.used()).toEqual([
      { id: w.head, len: 1 },
      { id: r.head, len: 4097 },
    ])
    expect(driver.data(r)).toEqual(data)
    expect(mem.describe().map((x) => x.base)).toEqual([0, RAM_BASE * 4])
    backing.close()
  })
})

describe('virtio-blk device behind the virtio-mmio transport', () => {
  it('without EVENT_IDX the handler follows VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
    const { driver, run, notifications } = rig(freshDisk(), { features: bit(VIRTIO_F.VERSION_1) })
    expect(run(driver.read(1, 512).head)).toHaveLength(1)
    expect(notifications()).toBe(1)
    driver.setAvailFlags(1) // VIRTQ_AVAIL_F_NO_INTERRUPT
    expect(run(driver.flush().head)).toHaveLength(1)
    expect(notifications()).toBe(1)
  })

  it('refuses an activation whose rings are outside guest RAM (DEVICE_NEEDS_RESET)', () => {
    const mem = GuestMemory.allocate([{ base: 0, size: 1 << 20 }], { shared: true })
    const dev = new VirtioBlkDevice({ backing: { kind: 'file', path: freshDisk() }, ram: mem })
    const t = new VirtioMmioTransport(dev)
    const wr = (off: number, v: number) => t.write(off, 4, v)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
    wr(R.DRIVER_FEATURES_SEL, 1)
    wr(R.DRIVER_FEATURES, 1) // VERSION_1
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
    wr(R.QUEUE_SEL, 0)
    wr(R.QUEUE_NUM, 64)
    wr(R.QUEUE_DESC_LOW, 0x20_0000)
    wr(R.QUEUE_DRIVER_LOW, 0x1000)
    wr(R.QUEUE_DEVICE_LOW, 0x2000)
    wr(R.QUEUE_READY, 1)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
    expect(t.deviceStatus & S.DEVICE_NEEDS_RESET).toBe(S.DEVICE_NEEDS_RESET)
    expect(dev.active).toBe(false)
  })
})
