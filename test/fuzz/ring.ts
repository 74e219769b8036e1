// Guest-side building blocks for the virtqueue and virtio-blk fuzz targets: guest RAM that checks
// every device access, arbitrary descriptors and split rings, and laying a ring out in RAM.
import fc from 'fast-check'
import { VIRTQ_DESC_F_NEXT } from '../../src/vm/kvm/virtio/queue.js'
import type { QueueConfig } from '../../src/vm/kvm/virtio/queue-config.js'
import { GuestMemory, type GuestRam } from '../../src/vm/memory/guest-memory.js'
import { check } from './config.js'

export const RAM_BASE = 0x10_0000
export const RAM_SIZE = 64 << 10

/** GuestRam that counts accesses and checks each one lies in RAM before passing it on. */
export class CheckedRam implements GuestRam {
  reads = 0
  readonly writes: [number, number][] = []
  constructor(readonly inner: GuestRam) {}
  private check(gpa: number, len: number): void {
    check(this.inner.contains(gpa, len), () => `access ${gpa}+${len} outside guest RAM`)
  }
  contains(gpa: number, len: number) {
    return this.inner.contains(gpa, len)
  }
  read(gpa: number, dst: Uint8Array) {
    this.check(gpa, dst.length)
    this.reads++
    this.inner.read(gpa, dst)
  }
  write(gpa: number, src: Uint8Array) {
    this.check(gpa, src.length)
    this.writes.push([gpa, src.length])
    this.inner.write(gpa, src)
  }
  readU16(gpa: number) {
    this.check(gpa, 2)
    this.reads++
    return this.inner.readU16(gpa)
  }
  readU32(gpa: number) {
    this.check(gpa, 4)
    this.reads++
    return this.inner.readU32(gpa)
  }
  readU64(gpa: number) {
    this.check(gpa, 8)
    this.reads++
    return this.inner.readU64(gpa)
  }
  writeU16(gpa: number, v: number) {
    this.check(gpa, 2)
    this.writes.push([gpa, 2])
    this.inner.writeU16(gpa, v)
  }
  writeU32(gpa: number, v: number) {
    this.check(gpa, 4)
    this.writes.push([gpa, 4])
    this.inner.writeU32(gpa, v)
  }
  writeU64(gpa: number, v: bigint) {
    this.check(gpa, 8)
    this.writes.push([gpa, 8])
    this.inner.writeU64(gpa, v)
  }
  hostAddress(gpa: number, len: number) {
    this.check(gpa, len)
    return this.inner.hostAddress(gpa, len)
  }
}

export interface RawDescriptor {
  addr: bigint
  len: number
  flags: number
  next: number
}

/** Any descriptor a driver could write, biased toward the interesting values. */
export function descriptorArb(size: number, buffers: fc.Arbitrary<{ addr: bigint; len: number }> = bufferArb): fc.Arbitrary<RawDescriptor> {
  return fc
    .record({
      buf: buffers,
      flags: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(0, VIRTQ_DESC_F_NEXT, 2, VIRTQ_DESC_F_NEXT | 2) },
        { weight: 2, arbitrary: fc.nat(7) },
        { weight: 1, arbitrary: fc.nat(0xffff) },
      ),
      next: fc.oneof({ weight: 8, arbitrary: fc.nat(size - 1) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
    })
    .map(({ buf, flags, next }) => ({ ...buf, flags, next }))
}

/** A buffer address and length: in RAM, straddling its ends, outside it, or a huge 64-bit value. */
export const bufferArb: fc.Arbitrary<{ addr: bigint; len: number }> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ addr: fc.nat(RAM_SIZE - 1).map((o) => BigInt(RAM_BASE + o)), len: fc.nat(600) }) },
  { weight: 1, arbitrary: fc.record({ addr: fc.integer({ min: -64, max: 64 }).map((d) => BigInt(RAM_BASE + RAM_SIZE + d)), len: fc.nat(128) }) },
  { weight: 1, arbitrary: fc.record({ addr: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), len: fc.nat(0xffffffff) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      addr: fc.constantFrom(0n, BigInt(RAM_BASE - 1), BigInt(Number.MAX_SAFE_INTEGER), (1n << 64n) - 1n),
      len: fc.constantFrom(0, 1, 0xffffffff),
    }),
  },
)

/** A ring as the guest left it: layout, descriptor table, avail entries and indices. */
export interface RingState {
  size: number
  config: QueueConfig
  descs: RawDescriptor[]
  availHeads: number[]
  nextAvail: number
  nextUsed: number
  availIdx: number
  availFlags: number
  usedEvent: number
  eventIdx: boolean
}

export function ringArb(opts: { maxLog2Size?: number; descriptor?: (size: number) => fc.Arbitrary<RawDescriptor> } = {}): fc.Arbitrary<RingState> {
  const descriptor = opts.descriptor ?? ((n: number) => descriptorArb(n))
  return fc
    .integer({ min: 0, max: opts.maxLog2Size ?? 8 })
    .map((k) => 1 << k)
    .chain((size) =>
      fc.record({
        size: fc.constant(size),
        gaps: fc.tuple(fc.nat(64), fc.nat(64), fc.nat(64)),
        descs: fc.array(descriptor(size), { minLength: size, maxLength: size }),
        availHeads: fc.array(fc.oneof({ weight: 8, arbitrary: fc.nat(size - 1) }, { weight: 1, arbitrary: fc.nat(0xffff) }), {
          minLength: size,
          maxLength: size,
        }),
        nextAvail: fc.oneof(fc.constant(0), fc.nat(0xffff)),
        nextUsed: fc.oneof(fc.constant(0), fc.nat(0xffff)),
        ahead: fc.oneof({ weight: 8, arbitrary: fc.nat(size) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
        availFlags: fc.nat(0xffff),
        usedEvent: fc.nat(0xffff),
        eventIdx: fc.boolean(),
      }),
    )
    .map(({ size, gaps, descs, availHeads, nextAvail, nextUsed, ahead, availFlags, usedEvent, eventIdx }) => {
      const descTable = RAM_BASE + 16 * gaps[0]
      const availRing = descTable + 16 * size + 2 * gaps[1]
      const usedRing = Math.ceil((availRing + 6 + 2 * size) / 4) * 4 + 4 * gaps[2]
      return {
        size,
        config: { size, descTable, availRing, usedRing, ready: true },
        descs,
        availHeads,
        nextAvail,
        nextUsed,
        availIdx: (nextAvail + ahead) & 0xffff,
        availFlags,
        usedEvent,
        eventIdx,
      }
    })
}

/** Fresh guest RAM with the ring written into it, the way a driver would lay it out. */
export function layRing(s: RingState, ram: GuestRam = GuestMemory.from([{ base: RAM_BASE, sab: new SharedArrayBuffer(RAM_SIZE) }])): GuestRam {
  const { descTable, availRing, usedRing } = s.config
  s.descs.forEach((d, i) => {
    ram.writeU64(descTable + 16 * i, d.addr)
    ram.writeU32(descTable + 16 * i + 8, d.len)
    ram.writeU16(descTable + 16 * i + 12, d.flags)
    ram.writeU16(descTable + 16 * i + 14, d.next)
  })
  ram.writeU16(availRing, s.availFlags)
  ram.writeU16(availRing + 2, s.availIdx)
  s.availHeads.forEach((h, i) => ram.writeU16(availRing + 4 + 2 * i, h))
  ram.writeU16(availRing + 4 + 2 * s.size, s.usedEvent)
  ram.writeU16(usedRing + 2, s.nextUsed)
  return ram
}
