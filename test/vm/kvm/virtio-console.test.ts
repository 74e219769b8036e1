import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { encodeFrame, FrameType } from '../../../runtime/protocol/index.js'
import { ChannelStream } from '../../../src/vm/kvm/virtio/console/channel-stream.js'
import { CONSOLE_PENDING_MAX, CONSOLE_EVENT as EV, CONSOLE_QUEUE as Q, VIRTIO_CONSOLE_F, VirtioConsole } from '../../../src/vm/kvm/virtio/console/device.js'
import { featureBit, MMIO_REG as R, DEVICE_STATUS as S, VIRTIO_F, VirtioMmioTransport } from '../../../src/vm/kvm/virtio/mmio.js'
import { needEvent } from '../../../src/vm/kvm/virtio/queue.js'
import { GuestMemory } from '../../../src/vm/memory/guest-memory.js'
import { startSession } from '../../../src/vm/session-runner.js'
import { fakeVm } from '../../helpers/fake-vm.js'

const NEXT = 1
const WRITE = 2

/** The guest side of one split virtqueue (virtio 1.2 §2.7). */
class Ring {
  private avail = 0
  private kickedAt = 0
  private seenUsed = 0
  private nextDesc = 0
  readonly desc: number
  readonly availRing: number
  readonly usedRing: number
  constructor(
    readonly mem: GuestMemory,
    readonly base: number,
    readonly size: number,
  ) {
    this.desc = base
    this.availRing = base + 16 * size
    this.usedRing = Math.ceil((this.availRing + 6 + 2 * size) / 4) * 4
  }
  /** Publishes a chain of buffers; returns its head index. */
  post(parts: { addr: number; len: number; write?: boolean }[]): number {
    const ids = parts.map(() => this.nextDesc++ % this.size)
    parts.forEach((p, i) => {
      const at = this.desc + 16 * ids[i]!
      this.mem.writeU64(at, p.addr)
      this.mem.writeU32(at + 8, p.len)
      this.mem.writeU16(at + 12, (p.write ? WRITE : 0) | (i < parts.length - 1 ? NEXT : 0))
      this.mem.writeU16(at + 14, ids[i + 1] ?? 0)
    })
    this.mem.writeU16(this.availRing + 4 + 2 * (this.avail % this.size), ids[0]!)
    this.avail = (this.avail + 1) & 0xffff
    this.mem.writeU16(this.availRing + 2, this.avail)
    return ids[0]!
  }
  /**
   * Does the driver kick after what it posted since its last kick? With EVENT_IDX only when its
   * avail idx passed the device's avail_event (§2.7.10, Linux virtqueue_kick_prepare); without,
   * always (the device's NO_NOTIFY flag is a hint this driver ignores).
   */
  shouldKick(eventIdx: boolean): boolean {
    const old = this.kickedAt
    this.kickedAt = this.avail
    if (!eventIdx) return true
    const availEvent = this.mem.readU16(this.usedRing + 4 + 8 * this.size)
    return needEvent(availEvent, this.avail, old)
  }
  /** Used elements the device returned since the last call. */
  used(): { id: number; len: number }[] {
    const idx = this.mem.readU16(this.usedRing + 2)
    const out: { id: number; len: number }[] = []
    for (; this.seenUsed !== idx; this.seenUsed = (this.seenUsed + 1) & 0xffff) {
      const at = this.usedRing + 4 + 8 * (this.seenUsed % this.size)
      out.push({ id: this.mem.readU32(at), len: this.mem.readU32(at + 4) })
    }
    return out
  }
}

const control = (id: number, event: number, value: number) => {
  const b = new Uint8Array(8)
  const dv = new DataView(b.buffer)
  dv.setUint32(0, id, true)
  dv.setUint16(4, event, true)
  dv.setUint16(6, value, true)
  return b
}
const parseControl = (b: Uint8Array) => {
  const dv = new DataView(b.buffer, b.byteOffset)
  return { id: dv.getUint32(0, true), event: dv.getUint16(4, true), value: dv.getUint16(6, true), payload: Buffer.from(b.subarray(8)).toString() }
}

function boot(opts: { multiport?: boolean; eventIdx?: boolean; onData?: (b: Uint8Array) => void } = {}) {
  const mem = GuestMemory.allocate([{ base: 0, size: 1 << 20 }])
  const received: string[] = []
  const opens: boolean[] = []
  let irqs = 0
  const onData = opts.onData ?? ((b: Uint8Array) => void received.push(Buffer.from(b).toString()))
  const dev = new VirtioConsole({ ram: mem, onData, onGuestOpen: (o) => opens.push(o) })
  const t = new VirtioMmioTransport(dev, { onInterrupt: () => irqs++ })
  const wr = (off: number, v: number) => t.write(off, 4, v)
  const rings = [0, 1, 2, 3].map((i) => new Ring(mem, 0x1_0000 * (i + 1), 16))
  let heap = 0x8_0000
  const alloc = (len: number) => ((heap += len + 64), heap - len - 64)

  wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
  const features = featureBit(VIRTIO_F.VERSION_1) | (opts.multiport === false ? 0n : featureBit(VIRTIO_CONSOLE_F.MULTIPORT)) | (opts.eventIdx ? featureBit(VIRTIO_F.EVENT_IDX) : 0n)
  wr(R.DRIVER_FEATURES_SEL, 1)
  wr(R.DRIVER_FEATURES, Number(features >> 32n))
  wr(R.DRIVER_FEATURES_SEL, 0)
  wr(R.DRIVER_FEATURES, Number(features & 0xffff_ffffn))
  wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
  const nq = opts.multiport === false ? 2 : 4
  rings.slice(0, nq).forEach((r, q) => {
    wr(R.QUEUE_SEL, q)
    wr(R.QUEUE_NUM, r.size)
    wr(R.QUEUE_DESC_LOW, r.desc)
    wr(R.QUEUE_DRIVER_LOW, r.availRing)
    wr(R.QUEUE_DEVICE_LOW, r.usedRing)
    wr(R.QUEUE_READY, 1)
  })
  wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
  expect(t.read(R.STATUS, 4) & S.DEVICE_NEEDS_RESET).toBe(0)

  /** Posts a device-writable buffer on queue q and returns its address. */
  const postRx = (q: number, len = 4096) => {
    const addr = alloc(len)
    rings[q]!.post([{ addr, len, write: true }])
    return addr
  }
  const sendOn = (q: number, bytes: Uint8Array) => {
    const addr = alloc(bytes.length)
    mem.write(addr, bytes)
    rings[q]!.post([{ addr, len: bytes.length }])
    wr(R.QUEUE_NOTIFY, q)
  }
  /** Kicks queue q the way the driver does: only when the device asked for it (see Ring.shouldKick). */
  const kick = (q: number) => {
    if (rings[q]!.shouldKick(opts.eventIdx ?? false)) wr(R.QUEUE_NOTIFY, q)
  }
  return { mem, dev, t, rings, received, opens, irqs: () => irqs, postRx, sendOn, wr, kick }
}

describe('virtio-console with one named port', () => {
  it('runs the multiport handshake and names port 0 ktstr.0', () => {
    const g = boot()
    expect(g.t.read(R.CONFIG + 4, 4)).toBe(1) // max_nr_ports
    const ctrlBufs = [0, 1, 2, 3].map(() => g.postRx(Q.CONTROL_RX))
    g.wr(R.QUEUE_NOTIFY, Q.CONTROL_RX)
    g.sendOn(Q.CONTROL_TX, control(0xffff_ffff, EV.DEVICE_READY, 1))
    expect(g.rings[Q.CONTROL_TX]!.used()).toHaveLength(1)
    const add = g.rings[Q.CONTROL_RX]!.used()
    expect(add).toHaveLength(1)
    expect(parseControl(g.mem.readBytes(ctrlBufs[0]!, add[0]!.len))).toMatchObject({ id: 0, event: EV.DEVICE_ADD })

    g.postRx(Q.RX)
    g.sendOn(Q.CONTROL_TX, control(0, EV.PORT_READY, 1))
    const msgs = g.rings[Q.CONTROL_RX]!.used().map((u, i) => parseControl(g.mem.readBytes(ctrlBufs[1 + i]!, u.len)))
    // Connected first, then named: the guest looks the port up by name and must not read end-of-file.
    expect(msgs).toEqual([
      { id: 0, event: EV.PORT_OPEN, value: 1, payload: '' },
      { id: 0, event: EV.PORT_NAME, value: 1, payload: 'ktstr.0' },
    ])
    expect(g.irqs()).toBeGreaterThan(0)
    expect(g.t.read(R.INTERRUPT_STATUS, 4) & 1).toBe(1)
  })

  it('holds host data until the guest opens the port, then fills receive buffers', () => {
    const g = boot()
    g.postRx(Q.CONTROL_RX)
    const rx = [g.postRx(Q.RX, 4096), g.postRx(Q.RX, 4096)]
    g.dev.send(Buffer.from('hello'))
    expect(g.rings[Q.RX]!.used()).toEqual([])
    expect(g.dev.pendingBytes).toBe(5)
    g.sendOn(Q.CONTROL_TX, control(0, EV.PORT_OPEN, 1))
    expect(g.opens).toEqual([true])
    const u = g.rings[Q.RX]!.used()
    expect(u).toEqual([{ id: expect.any(Number), len: 5 }])
    expect(Buffer.from(g.mem.readBytes(rx[0]!, 5)).toString()).toBe('hello')

    // More than one buffer's worth: split over the next buffers, the rest waits for more.
    const big = Uint8Array.from({ length: 6000 }, (_, i) => i & 0xff)
    g.dev.send(big)
    const u2 = g.rings[Q.RX]!.used()
    expect(u2.map((x) => x.len)).toEqual([4096])
    expect(Buffer.from(g.mem.readBytes(rx[1]!, 4096)).equals(Buffer.from(big.subarray(0, 4096)))).toBe(true)
    expect(g.dev.pendingBytes).toBe(6000 - 4096)
    const rx3 = g.postRx(Q.RX)
    g.wr(R.QUEUE_NOTIFY, Q.RX)
    expect(g.rings[Q.RX]!.used().map((x) => x.len)).toEqual([1904])
    expect(Buffer.from(g.mem.readBytes(rx3, 1904)).equals(Buffer.from(big.subarray(4096)))).toBe(true)
    expect(g.dev.pendingBytes).toBe(0)

    g.sendOn(Q.CONTROL_TX, control(0, EV.PORT_OPEN, 0))
    expect(g.opens).toEqual([true, false])
  })

  it('passes guest writes to the host, whatever the chain shape', () => {
    const g = boot()
    g.sendOn(Q.TX, Buffer.from('ping'))
    const a = 0x9_0000
    g.mem.write(a, Buffer.from('po'))
    g.mem.write(a + 0x100, Buffer.from('ng'))
    g.rings[Q.TX]!.post([
      { addr: a, len: 2 },
      { addr: a + 0x100, len: 2 },
    ])
    g.wr(R.QUEUE_NOTIFY, Q.TX)
    expect(g.received).toEqual(['ping', 'pong'])
    expect(g.rings[Q.TX]!.used().map((x) => x.len)).toEqual([0, 0])
  })

  it('completes a chain pointing outside guest RAM without delivering it', () => {
    const g = boot()
    g.rings[Q.TX]!.post([{ addr: 0x4000_0000, len: 16 }])
    g.wr(R.QUEUE_NOTIFY, Q.TX)
    expect(g.received).toEqual([])
    expect(g.rings[Q.TX]!.used()).toEqual([{ id: expect.any(Number), len: 0 }])
    expect(g.t.read(R.STATUS, 4) & S.DEVICE_NEEDS_RESET).toBe(0)
  })

  it('is a plain console on queues 0/1 when the driver declines MULTIPORT', () => {
    const g = boot({ multiport: false })
    expect(g.opens).toEqual([true])
    const rx = g.postRx(Q.RX)
    g.dev.send(Buffer.from('x'))
    expect(g.rings[Q.RX]!.used()).toEqual([{ id: expect.any(Number), len: 1 }])
    expect(g.mem.readU8(rx)).toBe(0x78)
    g.wr(R.STATUS, 0)
    expect(g.opens).toEqual([true, false])
  })

  it('refuses activation when a queue lies outside guest RAM', () => {
    const mem = GuestMemory.allocate([{ base: 0, size: 1 << 20 }])
    const t = new VirtioMmioTransport(new VirtioConsole({ ram: mem, onData: () => {} }))
    const wr = (off: number, v: number) => t.write(off, 4, v)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER)
    wr(R.DRIVER_FEATURES_SEL, 1)
    wr(R.DRIVER_FEATURES, 1)
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK)
    for (const q of [0, 1]) {
      wr(R.QUEUE_SEL, q)
      wr(R.QUEUE_NUM, 16)
      wr(R.QUEUE_DESC_LOW, q === 0 ? 0x20_0000 : 0x1000) // queue 0 beyond 1 MiB of RAM
      wr(R.QUEUE_DRIVER_LOW, 0x2000 + q * 0x1000)
      wr(R.QUEUE_DEVICE_LOW, 0x4000 + q * 0x1000)
      wr(R.QUEUE_READY, 1)
    }
    wr(R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
    expect(t.read(R.STATUS, 4) & S.DEVICE_NEEDS_RESET).toBe(S.DEVICE_NEEDS_RESET)
    expect(t.isActivated).toBe(false)
  })
})

/** The kvm channel path: guest writes arrive in the device's queue handler (an MMIO write), then the session. */
describe('virtio-console carrying the channel, with a guest that misbehaves', () => {
  const frame = (msg: unknown) => encodeFrame(FrameType.Control, Buffer.from(JSON.stringify(msg)))
  const healthy = (g: ReturnType<typeof boot>) => expect(g.t.read(R.STATUS, 4) & S.DEVICE_NEEDS_RESET).toBe(0)

  it('a malformed message ends the session with one line; the device keeps serving its queues', async () => {
    let channel!: ChannelStream
    const g = boot({ onData: (b) => channel.fromGuest(b) })
    channel = new ChannelStream((b, queued) => g.dev.send(b, queued))
    const vm = fakeVm(channel, () => channel.vmGone())
    const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-console-'))
    try {
      const started = startSession(vm, { t0: performance.now(), imageMs: 0, timeoutS: 600, tmpDir })
      g.sendOn(Q.TX, frame({ kind: 'hello', uptimeMs: 1, nodeVersion: 'v20' }))
      const session = await started
      // Once threw inside the session's listener, through push() into this MMIO write: the device
      // failed (NEEDS_RESET), the guest's writes stalled and the run waited for its timeout.
      expect(() => g.sendOn(Q.TX, frame({ kind: 'scheduler-exited', scheduler: 'scx_simple' }))).not.toThrow()
      healthy(g)
      expect(await session.done).toEqual({ kind: 'malformed-message', message: 'guest sent a malformed scheduler-exited message: exit: missing' })
      expect(vm.kills).toBe(1)
      g.sendOn(Q.TX, Buffer.from('after'))
      expect(g.rings[Q.TX]!.used().map((u) => u.len)).toEqual([0, 0, 0])
      healthy(g)
    } finally {
      fs.rmSync(tmpDir, { recursive: true, force: true })
    }
  })

  it('a reader that throws is not a device fault', () => {
    const g = boot({
      onData: () => {
        throw new Error('reader bug')
      },
    })
    g.sendOn(Q.TX, Buffer.from('one'))
    g.sendOn(Q.TX, Buffer.from('two'))
    expect(g.rings[Q.TX]!.used()).toHaveLength(2)
    healthy(g)
  })

  it('ChannelStream: a throwing data listener ends the stream with its error instead of throwing into the device', async () => {
    const channel = new ChannelStream((_b, queued) => queued())
    channel.on('data', () => {
      throw new Error('listener bug')
    })
    const failed = new Promise<Error>((resolve) => channel.once('error', resolve))
    await new Promise((resolve) => setImmediate(resolve)) // flowing: push() now emits 'data' synchronously
    expect(() => channel.fromGuest(Buffer.from('x'))).not.toThrow()
    expect((await failed).message).toBe('listener bug')
    expect(() => channel.fromGuest(Buffer.from('y'))).not.toThrow()
  })
})

describe('virtio-console: what the host sends is bounded by what the guest takes', () => {
  // With EVENT_IDX (Linux negotiates it) the driver kicks a reposted buffer only when the device
  // asked: a device that never published avail_event got no kick after the first ring's worth and
  // the held bytes waited forever (seen as a hung `ktstr exec --backend kvm` with 3 MiB of stdin).
  it.each([false, true])('holds at most CONSOLE_PENDING_MAX (plus one write); the stream pushes back until the guest reads (EVENT_IDX %s)', async (eventIdx) => {
    const g = boot({ eventIdx })
    g.postRx(Q.CONTROL_RX)
    g.sendOn(Q.CONTROL_TX, control(0, EV.PORT_OPEN, 1))
    const CHUNK = 64 * 1024
    const TOTAL = 4 * 1024 * 1024
    let maxHeld = 0
    const channel = new ChannelStream((b, queued) => {
      g.dev.send(b, queued)
      maxHeld = Math.max(maxHeld, g.dev.pendingBytes)
    })
    let produced = 0
    const source = Readable.from(
      (function* () {
        for (let off = 0; off < TOTAL; off += CHUNK) {
          produced += CHUNK
          yield Buffer.alloc(CHUNK, (off / CHUNK) & 0xff)
        }
      })(),
    )
    const sent = pipeline(source, channel)
    const ticks = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
    }

    // The guest reads nothing yet: the device fills to its bound, the stream buffers a little, the
    // source is not drained (before the bound, a sender's every byte went into the device's queue).
    await ticks(20)
    expect(g.dev.pendingBytes).toBeGreaterThanOrEqual(CONSOLE_PENDING_MAX)
    expect(maxHeld).toBeLessThan(CONSOLE_PENDING_MAX + CHUNK)
    expect(produced).toBeLessThan(CONSOLE_PENDING_MAX + 4 * CHUNK)

    // The guest reads 16 pages at a time (its buffers reused): everything arrives, in order.
    const got: Buffer[] = []
    const BUF = 0xa_0000
    while (got.reduce((n, b) => n + b.length, 0) < TOTAL) {
      for (let i = 0; i < 16; i++) g.rings[Q.RX]!.post([{ addr: BUF + i * 4096, len: 4096, write: true }])
      g.kick(Q.RX)
      const used = g.rings[Q.RX]!.used()
      expect(used.length, 'the device filled reposted buffers').toBeGreaterThan(0)
      used.forEach((u, i) => got.push(Buffer.from(g.mem.readBytes(BUF + i * 4096, u.len))))
      await ticks(2)
    }
    await sent
    const all = Buffer.concat(got)
    expect(all.length).toBe(TOTAL)
    for (let off = 0; off < TOTAL; off += CHUNK) expect(all[off]).toBe((off / CHUNK) & 0xff)
    expect(maxHeld).toBeLessThan(CONSOLE_PENDING_MAX + CHUNK)
    expect(g.dev.pendingBytes).toBe(0)
  })

  it('a write waiting for room completes (unsent) when the VM is gone', async () => {
    const g = boot()
    const channel = new ChannelStream((b, queued) => g.dev.send(b, queued))
    const big = Buffer.alloc(CONSOLE_PENDING_MAX) // the port is not open: all of it is held
    const written = new Promise<void>((resolve) => channel.write(big, () => resolve()))
    await new Promise((r) => setImmediate(r))
    expect(g.dev.pendingBytes).toBe(CONSOLE_PENDING_MAX)
    channel.vmGone()
    await written
  })
})

describe('virtio-console in a snapshot (src/vm/kvm/snapshot/)', () => {
  /** A guest mid-conversation: port open, host bytes held for want of buffers, rings moved on. */
  function midConversation() {
    const g = boot({ eventIdx: true })
    g.postRx(Q.CONTROL_RX)
    g.postRx(Q.RX, 8)
    g.sendOn(Q.CONTROL_TX, control(0, EV.PORT_OPEN, 1))
    g.sendOn(Q.TX, Buffer.from('hello'))
    g.dev.send(Buffer.from('0123456789abcdef')) // 8 bytes fit, 8 are held
    expect(g.rings[Q.RX]!.used().map((u) => u.len)).toEqual([8])
    expect(g.dev.pendingBytes).toBe(8)
    return g
  }

  it('a fresh transport and device over the same guest RAM carry on where the saved ones stopped', () => {
    const g = midConversation()
    // Through JSON, as the state file keeps it.
    const saved = JSON.parse(JSON.stringify(g.t.saveState()))
    const received: string[] = []
    const dev = new VirtioConsole({ ram: g.mem, onData: (b) => void received.push(Buffer.from(b).toString()) })
    const t = new VirtioMmioTransport(dev)
    t.loadState(saved)

    expect(t.read(R.STATUS, 4)).toBe(g.t.read(R.STATUS, 4))
    expect(t.driverFeatures).toBe(g.t.driverFeatures)
    expect(t.isActivated).toBe(true)
    expect(dev.guestConnected).toBe(true)
    expect(dev.pendingBytes).toBe(8)
    for (const q of [0, 1, 2, 3]) {
      t.write(R.QUEUE_SEL, 4, q)
      expect(t.read(R.QUEUE_READY, 4)).toBe(1)
    }

    expect(t.read(R.INTERRUPT_STATUS, 4)).toBe(g.t.read(R.INTERRUPT_STATUS, 4))
    // The held bytes go into the next buffer the guest posts, as the next used element of the ring.
    const rx = g.postRx(Q.RX, 64)
    t.write(R.QUEUE_NOTIFY, 4, Q.RX)
    expect(g.rings[Q.RX]!.used().map((u) => u.len)).toEqual([8])
    expect(Buffer.from(g.mem.readBytes(rx, 8)).toString()).toBe('89abcdef')
    // Guest writes reach the new device's reader, completed as the ring's next used element.
    g.mem.write(0xa_1000, Buffer.from('after'))
    g.rings[Q.TX]!.post([{ addr: 0xa_1000, len: 5 }])
    t.write(R.QUEUE_NOTIFY, 4, Q.TX)
    expect(received).toEqual(['after'])
    expect(g.received).toEqual(['hello'])
    expect(g.rings[Q.TX]!.used()).toHaveLength(2) // 'hello' before the snapshot, 'after' since
  })

  it('refuses a state that does not fit the device: queues it lacks, a queue size it cannot take', () => {
    const saved = midConversation().t.saveState()
    const fresh = () => new VirtioMmioTransport(new VirtioConsole({ ram: GuestMemory.allocate([{ base: 0, size: 1 << 20 }]), onData: () => {} }))
    expect(() => fresh().loadState({ ...saved, queues: saved.queues.slice(0, 3) })).toThrow(/has 3 queues, not 4/)
    expect(() => fresh().loadState({ ...saved, queues: saved.queues.map((q, i) => (i === 1 ? { ...q, num: 12 } : q)) })).toThrow(/queue 1 .* size 12, not a power of 2/)
    // Rings outside guest RAM: the device refuses its activation, as it would the driver's.
    expect(() => fresh().loadState({ ...saved, queues: saved.queues.map((q) => ({ ...q, desc: [0, 0x10] as [number, number] })) })).toThrow(/refused the snapshot's queues/)
  })
})
