// Fuzz target: the split virtqueue walker of our own VMM (src/vm/kvm/virtio/queue.ts) over
// arbitrary ring contents: descriptor loops, links and heads out of range, indirect descriptors
// (not offered), buffers outside RAM, 64-bit addresses, avail.idx far ahead, any start indices.
// Properties: popping never throws and ends (at most `size` chains per drain, at most `size`
// descriptors per chain, a bounded number of RAM reads), each chain is exactly what the table
// links (or says why it is malformed), and the used ring is written where it should be.
import fc from 'fast-check'
import { describe, expect } from 'vitest'
import { type DescriptorChain, SplitQueue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_MAX_SIZE, VirtqueueError } from '../../src/vm/kvm/virtio/queue.js'
import { GuestMemory, type GuestRam } from '../../src/vm/memory/guest-memory.js'
import { check, fuzz, isOneLine } from './config.js'
import { CheckedRam, layRing, RAM_BASE, RAM_SIZE, type RingState, ringArb } from './ring.js'

/** The chain must be exactly what the table links from its head, cut where the walker says. */
function expectFaithful(s: RingState, ram: GuestRam, chain: DescriptorChain): void {
  const { size } = s
  const where = () => `chain at head ${chain.head}: ${JSON.stringify(chain, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`
  check(chain.descriptors.length <= size, where)
  if (chain.malformed !== undefined) check(isOneLine(chain.malformed), where)
  if (chain.head >= size) {
    check(chain.descriptors.length === 0 && /head index/.test(chain.malformed ?? ''), where)
    return
  }
  let index = chain.head
  chain.descriptors.forEach((d, i) => {
    const raw = s.descs[index]!
    check(d.index === index && d.len === raw.len && d.flags === raw.flags, where)
    const safe = raw.addr <= BigInt(Number.MAX_SAFE_INTEGER)
    check(d.inRam === (safe && ram.contains(Number(raw.addr), raw.len)), where)
    if (safe) check(d.addr === Number(raw.addr), where)
    if (i < chain.descriptors.length - 1) {
      check((raw.flags & VIRTQ_DESC_F_NEXT) !== 0, where)
      index = raw.next
    }
  })
  const last = chain.descriptors[chain.descriptors.length - 1]!
  check(chain.complete ? (last.flags & VIRTQ_DESC_F_NEXT) === 0 : chain.malformed !== undefined, where)
  // A chain without complaint is one a device may use as is.
  if (chain.malformed === undefined) {
    for (const d of chain.descriptors) check(d.inRam && (d.flags & VIRTQ_DESC_F_INDIRECT) === 0, where)
  }
}

describe('fuzz: virtqueue walker', () => {
  fuzz('arbitrary rings: chains as linked, bounded, never an exception', () =>
    fc.property(ringArb(), fc.nat(0xffffffff), (s, usedLen) => {
      const ram = new CheckedRam(layRing(s))
      const q = new SplitQueue(ram, s.config, s.eventIdx, { nextAvail: s.nextAvail, nextUsed: s.nextUsed })
      const ahead = (s.availIdx - s.nextAvail) & 0xffff
      const chains: DescriptorChain[] = []
      for (let c = q.popAvail(); c; c = q.popAvail()) {
        chains.push(c)
        check(chains.length <= s.size, 'more chains popped than the queue holds')
      }
      // Each pop reads avail.idx, one ring entry and at most four fields per descriptor.
      check(ram.reads <= chains.length * (2 + 4 * s.size) + 2, () => `${ram.reads} RAM reads for ${chains.length} chains`)
      if (ahead > s.size) {
        check(chains.length === 0 && /ahead of the device/.test(q.broken ?? '') && isOneLine(q.broken!), `avail.idx ${ahead} ahead: ${q.broken}`)
      } else {
        check(chains.length === ahead && q.broken === undefined, `popped ${chains.length} of ${ahead} (${q.broken})`)
      }
      chains.forEach((c, i) => {
        check(c.head === s.availHeads[(s.nextAvail + i) & (s.size - 1)], `chain ${i} head ${c.head}`)
        expectFaithful(s, ram, c)
      })
      // Completing them writes only the used ring (and avail_event), never anything else.
      const usedEnd = s.config.usedRing + 6 + 8 * s.size
      for (const c of chains) q.addUsed(c.head, usedLen)
      q.needsNotification()
      q.enableNotification()
      q.disableNotification()
      for (const [gpa, len] of ram.writes) check(gpa >= s.config.usedRing && gpa + len <= usedEnd, () => `write at ${gpa}+${len} outside the used ring`)
      check(ram.readU16(s.config.usedRing + 2) === ((s.nextUsed + chains.length) & 0xffff), 'used.idx')
      chains.forEach((c, i) => {
        const slot = s.config.usedRing + 4 + 8 * ((s.nextUsed + i) & (s.size - 1))
        // With more chains than slots the later ones overwrite the earlier (only when size < chains).
        if (i + s.size >= chains.length) check(ram.readU32(slot) === c.head && ram.readU32(slot + 4) === usedLen, `used entry ${i}`)
      })
      check(q.nextAvail === ((s.nextAvail + chains.length) & 0xffff), 'nextAvail')
    }),
  )

  const addrArb = fc.oneof(
    fc.nat(RAM_SIZE + 64).map((o) => RAM_BASE + o),
    fc.nat(RAM_BASE + RAM_SIZE + 64),
    fc.constantFrom(0, 2 ** 32, Number.MAX_SAFE_INTEGER, 2 ** 64, RAM_BASE + RAM_SIZE - 6),
    fc.nat(0xffffffff).map((lo) => 0xffffffff * 2 ** 32 + lo),
  )
  fuzz('arbitrary queue configuration: a usable queue or a VirtqueueError', () =>
    fc.property(
      fc.record({
        size: fc.oneof(
          fc.integer({ min: 0, max: 10 }).map((k) => 1 << k),
          fc.nat(VIRTQ_MAX_SIZE + 2),
          fc.nat(0xffffffff),
          fc.constant(VIRTQ_MAX_SIZE),
        ),
        descTable: addrArb,
        availRing: addrArb,
        usedRing: addrArb,
        ready: fc.boolean(),
      }),
      fc.boolean(),
      fc.nat(0xffff),
      (config, eventIdx, start) => {
        const ram = new CheckedRam(GuestMemory.from([{ base: RAM_BASE, sab: new SharedArrayBuffer(RAM_SIZE) }]))
        let q: SplitQueue
        try {
          q = new SplitQueue(ram, config, eventIdx, { nextAvail: start, nextUsed: start })
        } catch (e) {
          expect(e).toBeInstanceOf(VirtqueueError)
          expect(isOneLine((e as Error).message)).toBe(true)
          return
        }
        // Accepted: every ring lies in RAM, so nothing the queue does can fault.
        expect(ram.contains(config.descTable, 16 * config.size)).toBe(true)
        expect(ram.contains(config.availRing, 6 + 2 * config.size)).toBe(true)
        expect(ram.contains(config.usedRing, 6 + 8 * config.size)).toBe(true)
        ram.writeU16(config.availRing + 2, (start + 1) & 0xffff)
        const c = q.popAvail()
        expect(c).toBeDefined()
        q.addUsed(c!.head, 0)
        q.needsNotification()
        q.enableNotification()
        expect(q.popAvail()).toBeUndefined()
      },
    ),
  )
})
