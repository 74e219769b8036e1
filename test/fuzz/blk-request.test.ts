// Fuzz target: the virtio-blk request parser of our own VMM (src/vm/kvm/virtio/block/request.ts),
// on chains the real virtqueue walker pops from rings full of request-shaped chains, some
// well-formed and some broken (wrong lengths or directions, too many or too large segments,
// sectors past the end, unknown types, buffers outside RAM, any descriptor replaced by an
// arbitrary one). Properties: a request or a rejection, never an exception; an accepted request
// only names in-RAM buffers that obey the limits, and every request built right is accepted;
// the parser reads nothing but the header. Then the whole queue handler drains such rings
// against a real file: every chain comes back on the used ring, nothing throws, and guest RAM
// changes only in device-writable buffers and the used ring.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, vi } from 'vitest'
import { log } from '../../src/util/log.js'
import { FileBacking } from '../../src/vm/kvm/virtio/block/backing.js'
import {
  SECTOR_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../../src/vm/kvm/virtio/block/constants.js'
import { VirtioBlkDevice } from '../../src/vm/kvm/virtio/block/device.js'
import { blkQueueHandler } from '../../src/vm/kvm/virtio/block/handler.js'
import { type DiskLimits, parseRequest } from '../../src/vm/kvm/virtio/block/request.js'
import { featureBit, VIRTIO_F } from '../../src/vm/kvm/virtio/mmio.js'
import { type DescriptorChain, isWritable, SplitQueue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/vm/kvm/virtio/queue.js'
import { GuestMemory } from '../../src/vm/memory/guest-memory.js'
import { check, fuzz, isOneLine } from './config.js'
import { bufferArb, CheckedRam, descriptorArb, layRing, RAM_BASE, RAM_SIZE, type RawDescriptor, type RingState } from './ring.js'

const QSIZE = 32
/** Rings live below this offset; request buffers above it (unless a case puts them anywhere). */
const BUFFERS = 4096
const HEADERS = BUFFERS // one 16-byte slot per chain, so well-formed headers never overlap
const DATA = BUFFERS + 16 * QSIZE
const KNOWN_TYPES = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID]

interface Buf {
  addr: bigint
  len: number
  write: boolean
}

interface ReqSpec {
  type: number
  sector: bigint
  header: Buf
  data: Buf[]
  status: Buf
  /** Replace descriptor `at` of the chain by an arbitrary one. */
  tweak: { at: number; desc: RawDescriptor } | null
  /** Built by the rules (before the limits are applied). */
  wellFormed: boolean
}

/** An in-RAM buffer in the data area, or (rarely) any address at all. */
const placed = (len: number) =>
  fc.oneof({ weight: 12, arbitrary: fc.nat(RAM_SIZE - DATA - len).map((o) => BigInt(RAM_BASE + DATA + o)) }, { weight: 1, arbitrary: bufferArb.map((b) => b.addr) })

const dataLenArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 8 }).map((n) => n * SECTOR_SIZE) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, VIRTIO_BLK_ID_BYTES, 4097, 8192) },
  { weight: 1, arbitrary: fc.nat(5000) },
)

function reqArb(slot: number): fc.Arbitrary<ReqSpec> {
  return fc
    .record({
      type: fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...KNOWN_TYPES) }, { weight: 1, arbitrary: fc.nat(0xffffffff) }),
      sector: fc.oneof(
        { weight: 8, arbitrary: fc.bigInt({ min: 0n, max: 72n }) },
        { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
        { weight: 1, arbitrary: fc.constantFrom((1n << 64n) - 1n, 1n << 54n, BigInt(Number.MAX_SAFE_INTEGER)) },
      ),
      dataLens: fc.array(dataLenArb, { maxLength: 5 }),
      /** Most flushes carry no data, as they should. */
      bareFlush: fc.nat(3),
      flipData: fc.oneof({ weight: 10, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(4) }),
      headerLen: fc.oneof({ weight: 12, arbitrary: fc.constant(16) }, { weight: 1, arbitrary: fc.nat(40) }),
      headerWrite: fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      statusLen: fc.oneof({ weight: 12, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat(4) }),
      statusWrite: fc.oneof({ weight: 12, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      headerAnywhere: fc.oneof({ weight: 15, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: bufferArb.map((b) => b.addr) }),
      tweak: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.record({ at: fc.nat(7), desc: descriptorArb(QSIZE) }) }),
    })
    .map((r) => (r.type === VIRTIO_BLK_T_FLUSH && r.bareFlush > 0 ? { ...r, dataLens: [] } : r))
    .chain((r) =>
      fc.record({
        r: fc.constant(r),
        dataAddrs: fc.tuple(...r.dataLens.map((l) => placed(l))),
        statusAddr: placed(Math.max(r.statusLen, 1)),
      }),
    )
    .map(({ r, dataAddrs, statusAddr }) => {
      const header: Buf = { addr: r.headerAnywhere ?? BigInt(RAM_BASE + HEADERS + 16 * slot), len: r.headerLen, write: r.headerWrite }
      const data = r.dataLens.map((len, i) => ({ addr: dataAddrs[i]!, len, write: (r.type !== VIRTIO_BLK_T_OUT) !== (i === r.flipData) }))
      const status: Buf = { addr: statusAddr, len: r.statusLen, write: r.statusWrite }
      const inArea = (b: Buf) => b.addr >= BigInt(RAM_BASE + BUFFERS) && b.addr + BigInt(b.len) <= BigInt(RAM_BASE + RAM_SIZE)
      const total = r.dataLens.reduce((s, l) => s + l, 0)
      const shapeOk =
        r.type === VIRTIO_BLK_T_FLUSH
          ? data.length === 0
          : r.type === VIRTIO_BLK_T_GET_ID
            ? total >= VIRTIO_BLK_ID_BYTES && r.dataLens.every((l) => l > 0)
            : KNOWN_TYPES.includes(r.type) && data.length > 0 && total % SECTOR_SIZE === 0 && r.dataLens.every((l) => l > 0)
      const wellFormed =
        r.tweak === null &&
        r.headerAnywhere === null &&
        !r.headerWrite &&
        r.headerLen === 16 &&
        r.statusLen === 1 &&
        r.statusWrite &&
        r.flipData < 0 &&
        shapeOk &&
        [status, ...data].every(inArea)
      return { type: r.type, sector: r.sector, header, data, status, tweak: r.tweak, wellFormed }
    })
}

/** A ring whose avail entries are request chains laid head to tail in the descriptor table. */
const blkRingArb = fc
  .integer({ min: 1, max: 6 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => reqArb(i))))
  .chain((reqs) => fc.record({ reqs: fc.constant(reqs), eventIdx: fc.boolean(), start: fc.oneof(fc.constant(0), fc.nat(0xffff)) }))
  .map(({ reqs, eventIdx, start }): { ring: RingState; reqs: ReqSpec[] } => {
    const descs: RawDescriptor[] = Array.from({ length: QSIZE }, () => ({ addr: 0n, len: 0, flags: 0, next: 0 }))
    const heads: number[] = []
    let at = 0
    const kept: ReqSpec[] = []
    for (const r of reqs) {
      const bufs = [r.header, ...r.data, r.status]
      if (at + bufs.length > QSIZE) break
      heads.push(at)
      bufs.forEach((b, i) => {
        const last = i === bufs.length - 1
        descs[at + i] = { addr: b.addr, len: b.len, flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next: last ? 0 : at + i + 1 }
      })
      if (r.tweak) descs[at + (r.tweak.at % bufs.length)] = r.tweak.desc
      at += bufs.length
      kept.push(r)
    }
    const availHeads = Array.from({ length: QSIZE }, (_, i) => heads[i] ?? 0)
    const ring: RingState = {
      size: QSIZE,
      config: { size: QSIZE, descTable: RAM_BASE, availRing: RAM_BASE + 16 * QSIZE, usedRing: RAM_BASE + 16 * QSIZE + 6 + 2 * QSIZE + 2, ready: true },
      descs,
      availHeads,
      nextAvail: start,
      nextUsed: start,
      availIdx: (start + heads.length) & 0xffff,
      availFlags: 0,
      usedEvent: 0,
      eventIdx,
    }
    // Rotate the heads to where the driver's start index puts them.
    ring.availHeads = availHeads.map((_, i) => heads[(i - start) & (QSIZE - 1)] ?? 0)
    return { ring, reqs: kept }
  })

/** Guest RAM holding the ring and each in-RAM header's type and sector. */
function layBlk(ring: RingState, reqs: ReqSpec[]): GuestMemory {
  const ram = GuestMemory.from([{ base: RAM_BASE, sab: new SharedArrayBuffer(RAM_SIZE) }])
  for (const r of reqs) {
    const a = r.header.addr
    if (a <= BigInt(Number.MAX_SAFE_INTEGER) && ram.contains(Number(a), 16)) {
      ram.writeU32(Number(a), r.type)
      ram.writeU64(Number(a) + 8, r.sector)
    }
  }
  layRing(ring, ram)
  return ram
}

const limitsArb: fc.Arbitrary<DiskLimits> = fc.record({
  capacity: fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min: 0n, max: 80n }) }, { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  readOnly: fc.boolean(),
  segMax: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(126)),
  sizeMax: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(512, 4096, 1 << 20) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 10000 }) }),
})

const ioOk = (code: number) => code === VIRTIO_BLK_S_IOERR || code === VIRTIO_BLK_S_UNSUPP

/** An accepted request is consistent with its chain, the header in RAM and the limits. */
function checkAccepted(ram: CheckedRam, chain: DescriptorChain, disk: DiskLimits, req: Extract<ReturnType<typeof parseRequest>, { ok: true }>['request']): void {
  const d = chain.descriptors
  const why = () =>
    `accepted ${JSON.stringify(req, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))} from ${JSON.stringify(chain, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`
  check(chain.complete && chain.malformed === undefined && d.length >= 2 && req.head === chain.head, why)
  check(
    d.every((x) => x.inRam && (x.flags & VIRTQ_DESC_F_INDIRECT) === 0),
    why,
  )
  const hdr = d[0]!
  const last = d[d.length - 1]!
  check(!isWritable(hdr) && hdr.len === 16, why)
  check(isWritable(last) && last.len === 1 && req.status === last.addr, why)
  const data = d.slice(1, -1)
  const type = ram.inner.readU32(hdr.addr)
  const total = data.reduce((s, x) => s + x.len, 0)
  const segmentsMatch = (segs: readonly { gpa: number; len: number }[]) =>
    segs.length === data.length && segs.every((s, i) => s.gpa === data[i]!.addr && s.len === data[i]!.len && ram.contains(s.gpa, s.len))
  const withinLimits = data.length <= disk.segMax && data.every((x) => x.len > 0 && x.len <= disk.sizeMax)
  switch (req.type) {
    case 'in':
    case 'out': {
      const out = req.type === 'out'
      check(type === (out ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN) && req.sector === ram.inner.readU64(hdr.addr + 8), why)
      check(segmentsMatch(req.segments) && withinLimits && data.every((x) => isWritable(x) === !out), why)
      check(req.len === total && total > 0 && total % SECTOR_SIZE === 0, why)
      check(req.sector + BigInt(total / SECTOR_SIZE) <= disk.capacity && req.offset === Number(req.sector) * SECTOR_SIZE, why)
      check(!(out && disk.readOnly), why)
      break
    }
    case 'flush':
      check(type === VIRTIO_BLK_T_FLUSH && data.length === 0, why)
      break
    case 'get-id':
      check(type === VIRTIO_BLK_T_GET_ID && segmentsMatch(req.segments) && withinLimits && data.every(isWritable), why)
      check(req.len === total && total >= VIRTIO_BLK_ID_BYTES, why)
      break
  }
}

/** A request built by the rules and within the limits. */
function acceptable(r: ReqSpec, disk: DiskLimits): boolean {
  if (!r.wellFormed) return false
  if (r.type === VIRTIO_BLK_T_FLUSH) return true
  if (r.data.length > disk.segMax || r.data.some((b) => b.len > disk.sizeMax)) return false
  if (r.type === VIRTIO_BLK_T_GET_ID) return true
  const total = r.data.reduce((s, b) => s + b.len, 0)
  return r.sector + BigInt(total / SECTOR_SIZE) <= disk.capacity && !(r.type === VIRTIO_BLK_T_OUT && disk.readOnly)
}

describe('fuzz: virtio-blk request parser', () => {
  fuzz('walked request chains: a checked request or a rejection with a usable status', () =>
    fc.property(blkRingArb, limitsArb, ({ ring, reqs }, disk) => {
      const ram = new CheckedRam(layBlk(ring, reqs))
      const queue = new SplitQueue(ram, ring.config, ring.eventIdx, { nextAvail: ring.nextAvail, nextUsed: ring.nextUsed })
      reqs.forEach((r, i) => {
        const chain = queue.popAvail()
        check(chain, `chain ${i} missing`)
        const reads = ram.reads
        const res = parseRequest(ram, chain, disk)
        // The parser reads the header (type, sector) and nothing else.
        check(ram.reads - reads <= 2, `parser made ${ram.reads - reads} reads`)
        if (res.ok) {
          checkAccepted(ram, chain, disk, res.request)
        } else {
          const { status, code, reason, head } = res.rejection
          check(head === chain.head && ioOk(code) && isOneLine(reason), () => `rejection ${JSON.stringify(res.rejection)}`)
          if (code === VIRTIO_BLK_S_UNSUPP) check(!KNOWN_TYPES.includes(ram.inner.readU32(chain.descriptors[0]!.addr)), 'UNSUPP for a known type')
          if (status !== undefined) {
            const last = chain.descriptors[chain.descriptors.length - 1]!
            check(status === last.addr && isWritable(last) && last.inRam && last.len >= 1 && chain.complete, () => `status ${status} for ${reason}`)
          }
        }
        // Completeness: a request built by the rules is accepted.
        if (acceptable(r, disk)) check(res.ok, () => `well-formed request ${i} rejected: ${!res.ok && res.rejection.reason}`)
      })
      check(queue.popAvail() === undefined, 'extra chain')
    }),
  )
})

describe('fuzz: virtio-blk queue handler over a real file', () => {
  let dir: string
  const backings: FileBacking[] = []
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-fuzz-blk-'))
    fs.writeFileSync(path.join(dir, 'disk.img'), Buffer.alloc(64 * SECTOR_SIZE, 0x5a))
  })
  afterAll(() => {
    for (const b of backings) b.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  fuzz('drains any request ring: every chain used, RAM written only where the driver allowed', () => {
    const file = path.join(dir, 'disk.img')
    const rw = FileBacking.open(file)
    const ro = FileBacking.open(file, { readOnly: true })
    backings.push(rw, ro)
    const devices = {
      rw: new VirtioBlkDevice({ backing: { kind: 'file', path: file, readOnly: false }, queueSize: QSIZE, segMax: 3, sizeMax: 4096 }),
      ro: new VirtioBlkDevice({ backing: { kind: 'file', path: file, readOnly: true }, queueSize: QSIZE }),
    }
    const warn = vi.spyOn(log, 'warn')
    return fc.property(blkRingArb, fc.boolean(), ({ ring, reqs }, readOnly) => {
      const inner = layBlk(ring, reqs)
      const ram = new CheckedRam(inner)
      // What the driver lets the device write: device-writable buffers of the chains, the used ring.
      const allowed: [number, number][] = [[ring.config.usedRing, ring.config.usedRing + 6 + 8 * QSIZE]]
      const walker = new SplitQueue(inner, ring.config, ring.eventIdx, { nextAvail: ring.nextAvail, nextUsed: ring.nextUsed })
      const heads: number[] = []
      for (let c = walker.popAvail(); c; c = walker.popAvail()) {
        heads.push(c.head)
        for (const d of c.descriptors) if (isWritable(d) && d.inRam) allowed.push([d.addr, d.addr + d.len])
      }
      const before = new Uint8Array(RAM_SIZE)
      inner.read(RAM_BASE, before)
      let broken: string | undefined
      const setup = (readOnly ? devices.ro : devices.rw).queueSetup(ram, [ring.config], ring.eventIdx ? featureBit(VIRTIO_F.EVENT_IDX) : 0n)
      const handler = blkQueueHandler(
        { ...setup, queueState: { nextAvail: ring.nextAvail, nextUsed: ring.nextUsed } },
        { ram, backing: readOnly ? ro : rw, notify: () => {}, onBroken: (why) => (broken = why) },
      )
      const done = handler.drain()
      check(warn.mock.calls.length === 0, () => `handler warned: ${warn.mock.calls.map((c) => c[0]).join(' | ')}`)
      // A driver that points a device-writable buffer at its own rings gets what it asked for.
      const ringsEnd = ring.config.usedRing + 6 + 8 * QSIZE
      if (allowed.slice(1).some(([a, b]) => a < ringsEnd && b > RAM_BASE)) return
      check(broken === undefined && done === heads.length, () => `drained ${done} of ${heads.length} (${broken})`)
      // Every chain is on the used ring, in order.
      for (let i = 0; i < heads.length; i++) {
        const slot = ring.config.usedRing + 4 + 8 * ((ring.nextUsed + i) & (QSIZE - 1))
        check(inner.readU32(slot) === heads[i], `used entry ${i}`)
      }
      const after = new Uint8Array(RAM_SIZE)
      inner.read(RAM_BASE, after)
      for (let i = 0; i < RAM_SIZE; i++) {
        if (before[i] === after[i]) continue
        const gpa = RAM_BASE + i
        check(
          allowed.some(([a, b]) => gpa >= a && gpa < b),
          () => `device wrote guest byte ${gpa.toString(16)} outside every writable buffer`,
        )
      }
    })
  })
})
