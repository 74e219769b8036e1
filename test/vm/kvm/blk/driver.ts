// A test driver playing the guest side of a split virtqueue and of virtio-blk: it lays out the
// rings in guest RAM, builds descriptor chains (well formed or deliberately broken), publishes
// them on the available ring, and reads back used entries and status bytes.

import { VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../../../../src/vm/kvm/virtio/block/constants.js'
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../../../src/vm/kvm/virtio/queue.js'
import type { QueueConfig } from '../../../../src/vm/kvm/virtio/queue-config.js'
import type { GuestRam } from '../../../../src/vm/memory/guest-memory.js'

export interface RawDesc {
  addr: number | bigint
  len: number
  flags: number
  next?: number
}

/** One buffer of a chain: at `addr`, or freshly allocated (and filled with `data`). */
export interface Part {
  len: number
  write?: boolean
  addr?: number
  data?: Uint8Array
  /** Extra flag bits (e.g. VIRTQ_DESC_F_INDIRECT). */
  flags?: number
}

export interface UsedElem {
  id: number
  len: number
}

/** A virtio-blk request as the driver built it. */
export interface BlkReq {
  head: number
  status: number
  /** Data buffers in order. */
  data: { gpa: number; len: number }[]
}

const align = (n: number, a: number) => Math.ceil(n / a) * a

export class GuestDriver {
  readonly config: QueueConfig
  private availIdx: number
  private lastUsed: number
  private readonly free: number[]
  private readonly chains = new Map<number, number[]>()
  private heapStart: number
  private heapTop: number

  constructor(
    readonly ram: GuestRam,
    readonly opts: { queueSize: number; base: number; size: number; startIdx?: number },
  ) {
    const { queueSize: n, base } = opts
    const desc = align(base, 16)
    const avail = desc + 16 * n
    const used = align(avail + 6 + 2 * n, 4)
    this.config = { size: n, descTable: desc, availRing: avail, usedRing: used, ready: true }
    this.heapStart = this.heapTop = align(used + 6 + 8 * n, 4096)
    this.free = Array.from({ length: n }, (_, i) => i)
    this.availIdx = this.lastUsed = (opts.startIdx ?? 0) & 0xffff
    // Ring memory starts zeroed except for the indices the test starts from.
    ram.write(desc, new Uint8Array(this.heapStart - desc))
    ram.writeU16(avail + 2, this.availIdx)
    ram.writeU16(used + 2, this.lastUsed)
  }

  /** Guest memory for buffers (bump allocation; reset() when nothing is in flight). */
  alloc(len: number, alignment = 8): number {
    const at = align(this.heapTop, alignment)
    if (at + len > this.opts.base + this.opts.size) throw new Error('test driver out of guest memory')
    this.heapTop = at + len
    return at
  }

  reset(): void {
    if (this.chains.size) throw new Error('reset with requests in flight')
    this.heapTop = this.heapStart
  }

  get inFlight(): number {
    return this.chains.size
  }

  get freeDescriptors(): number {
    return this.free.length
  }

  writeDesc(index: number, d: RawDesc): void {
    const at = this.config.descTable + 16 * index
    this.ram.writeU64(at, BigInt(d.addr))
    this.ram.writeU32(at + 8, d.len)
    this.ram.writeU16(at + 12, d.flags)
    this.ram.writeU16(at + 14, d.next ?? 0)
  }

  /** Builds a chain from fresh descriptors and returns its head (not yet published). */
  chain(parts: Part[]): number {
    if (parts.length === 0 || parts.length > this.free.length) throw new Error(`no room for a ${parts.length}-descriptor chain`)
    const idx = parts.map(() => this.free.shift()!)
    parts.forEach((p, i) => {
      const addr = p.addr ?? this.alloc(Math.max(p.len, 1))
      if (p.data) this.ram.write(addr, p.data)
      const last = i === parts.length - 1
      this.writeDesc(idx[i]!, {
        addr,
        len: p.len,
        flags: (p.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT) | (p.flags ?? 0),
        next: last ? 0 : idx[i + 1]!,
      })
    })
    this.chains.set(idx[0]!, idx)
    return idx[0]!
  }

  /**
   * Claims descriptors for a hand-made chain (loops, bad links): `descs[i]` is written at the i-th
   * claimed index; `link(i)` gives the table index of the i-th claimed descriptor for `next`.
   */
  rawChain(build: (link: (i: number) => number) => RawDesc[], count: number): number {
    const idx = Array.from({ length: count }, () => this.free.shift()!)
    build((i) => idx[i]!).forEach((d, i) => this.writeDesc(idx[i]!, d))
    this.chains.set(idx[0]!, idx)
    return idx[0]!
  }

  /** Places heads on the available ring and then publishes the new avail.idx. */
  publish(...heads: number[]): void {
    const { availRing: a, size } = this.config
    for (const h of heads) {
      this.ram.writeU16(a + 4 + 2 * (this.availIdx & (size - 1)), h)
      this.availIdx = (this.availIdx + 1) & 0xffff
    }
    this.ram.writeU16(a + 2, this.availIdx)
  }

  /** Publishes a raw avail.idx (to break the protocol). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff
    this.ram.writeU16(this.config.availRing + 2, this.availIdx)
  }

  setAvailFlags(flags: number): void {
    this.ram.writeU16(this.config.availRing, flags)
  }

  /** used_event: "interrupt me once used.idx passes this" (EVENT_IDX). */
  setUsedEvent(idx: number): void {
    this.ram.writeU16(this.config.availRing + 4 + 2 * this.config.size, idx & 0xffff)
  }

  /** avail_event as the device published it. */
  availEvent(): number {
    return this.ram.readU16(this.config.usedRing + 4 + 8 * this.config.size)
  }

  usedFlags(): number {
    return this.ram.readU16(this.config.usedRing)
  }

  usedIdx(): number {
    return this.ram.readU16(this.config.usedRing + 2)
  }

  /** New used entries since the last call; their descriptors return to the free list. */
  used(): UsedElem[] {
    const { usedRing: u, size } = this.config
    const out: UsedElem[] = []
    const idx = this.usedIdx()
    while (this.lastUsed !== idx) {
      const slot = u + 4 + 8 * (this.lastUsed & (size - 1))
      const e = { id: this.ram.readU32(slot), len: this.ram.readU32(slot + 4) }
      out.push(e)
      const descs = this.chains.get(e.id)
      if (descs) {
        this.free.push(...descs)
        this.chains.delete(e.id)
      }
      this.lastUsed = (this.lastUsed + 1) & 0xffff
    }
    return out
  }

  // --- virtio-blk requests -------------------------------------------------------------

  header(type: number, sector: bigint | number): Uint8Array {
    const h = new Uint8Array(16)
    const dv = new DataView(h.buffer)
    dv.setUint32(0, type, true)
    dv.setBigUint64(8, BigInt(sector), true)
    return h
  }

  /** A blk request: header, data parts, 1-byte status (0xff until the device writes it). */
  request(type: number, sector: bigint | number, data: Part[]): BlkReq {
    const status = this.alloc(1, 1)
    this.ram.write(status, Uint8Array.of(0xff))
    const addrs = data.map((p) => p.addr ?? this.alloc(Math.max(p.len, 1), 512))
    const head = this.chain([{ len: 16, data: this.header(type, sector) }, ...data.map((p, i) => ({ ...p, addr: addrs[i]! })), { len: 1, write: true, addr: status }])
    return { head, status, data: data.map((p, i) => ({ gpa: addrs[i]!, len: p.len })) }
  }

  /** Splits `len` bytes into `segments` sector-sized-ish parts (all but the last a multiple of 512). */
  static split(len: number, segments: number): number[] {
    const sectors = len / 512
    const n = Math.max(1, Math.min(segments, sectors))
    const base = Math.floor(sectors / n)
    return Array.from({ length: n }, (_, i) => 512 * (i === n - 1 ? sectors - base * (n - 1) : base))
  }

  read(sector: number | bigint, len: number, segments = 1): BlkReq {
    return this.request(
      VIRTIO_BLK_T_IN,
      sector,
      GuestDriver.split(len, segments).map((l) => ({ len: l, write: true })),
    )
  }

  write(sector: number | bigint, bytes: Uint8Array, segments = 1): BlkReq {
    let pos = 0
    return this.request(
      VIRTIO_BLK_T_OUT,
      sector,
      GuestDriver.split(bytes.length, segments).map((l) => {
        const part = { len: l, data: bytes.subarray(pos, pos + l) }
        pos += l
        return part
      }),
    )
  }

  flush(): BlkReq {
    return this.request(VIRTIO_BLK_T_FLUSH, 0, [])
  }

  getId(len = 20): BlkReq {
    return this.request(VIRTIO_BLK_T_GET_ID, 0, [{ len, write: true }])
  }

  status(req: BlkReq): number {
    const b = new Uint8Array(1)
    this.ram.read(req.status, b)
    return b[0]!
  }

  data(req: BlkReq): Uint8Array {
    const out = new Uint8Array(req.data.reduce((s, d) => s + d.len, 0))
    let pos = 0
    for (const d of req.data) {
      const b = new Uint8Array(d.len)
      this.ram.read(d.gpa, b)
      out.set(b, pos)
      pos += d.len
    }
    return out
  }
}
