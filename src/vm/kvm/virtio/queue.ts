// The device side of a split virtqueue (virtio 1.2 §2.7) over guest RAM.
//
// Memory ordering (§2.7.13, Linux virtio_ring / vhost): the driver fills descriptors and the
// avail ring entry before it stores avail.idx, so once we load avail.idx (a single-copy u16 load)
// the entries before it are readable; on x86 loads are not reordered with older loads, and the
// JIT does not move plain loads above an Atomics.load. We write the used element before storing
// used.idx (stores are not reordered on x86; the idx store is an Atomics.store). The two places
// that need a full barrier are a store followed by a load of the other side's field: used.idx
// then used_event (or avail.flags) in needsNotification(), and avail_event then avail.idx in
// enableNotification(). fence() provides it.
import { isPow2 } from '../../memory/address.js'
import type { GuestRam } from '../../memory/guest-memory.js'
import type { QueueConfig } from './queue-config.js'

export const VIRTQ_DESC_F_NEXT = 1
export const VIRTQ_DESC_F_WRITE = 2
export const VIRTQ_DESC_F_INDIRECT = 4
export const VIRTQ_USED_F_NO_NOTIFY = 1
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1
/** Largest queue size for split virtqueues (§2.7). */
export const VIRTQ_MAX_SIZE = 32768

const DESC_SIZE = 16

export interface Descriptor {
  /** Index in the descriptor table. */
  readonly index: number
  readonly addr: number
  readonly len: number
  readonly flags: number
  /** The whole buffer [addr, addr+len) lies in guest RAM. */
  readonly inRam: boolean
}

export const isWritable = (d: Descriptor) => (d.flags & VIRTQ_DESC_F_WRITE) !== 0

export interface DescriptorChain {
  readonly head: number
  /** The descriptors walked, in chain order (all of them when `complete`). */
  readonly descriptors: readonly Descriptor[]
  /** The walk ended at a descriptor without NEXT, so the last descriptor is the chain's last. */
  readonly complete: boolean
  /** Why the chain is malformed; undefined for a well-formed chain. */
  readonly malformed?: string
}

/** The queue configuration cannot be used (bad size, alignment, or rings outside guest RAM). */
export class VirtqueueError extends Error {
  override readonly name = 'VirtqueueError'
}

const fenceCell = new Int32Array(new SharedArrayBuffer(4))
/** A full memory barrier: a locked read-modify-write (lock xadd on x86). */
export function fence(): void {
  Atomics.add(fenceCell, 0, 0)
}

/** vring_need_event (§2.7.10): did the index move past `eventIdx` when going from `old` to `next`? */
export function needEvent(eventIdx: number, next: number, old: number): boolean {
  return ((next - eventIdx - 1) & 0xffff) < ((next - old) & 0xffff)
}

const hex = (n: number) => `0x${n.toString(16)}`

export interface SplitQueueState {
  nextAvail: number
  nextUsed: number
}

export class SplitQueue {
  readonly size: number
  private readonly desc: number
  private readonly avail: number
  private readonly used: number
  private _nextAvail: number
  private _nextUsed: number
  private signalledUsed: number
  /** Used entries added since the last needsNotification(); a u16 wrap must still notify. */
  private addedSinceCheck = 0
  private _broken: string | undefined

  /**
   * Validates `config` against §2.7 (size a power of 2 up to 32768; alignment 16/2/4; all three
   * areas inside guest RAM) and throws VirtqueueError when it cannot be used.
   */
  constructor(
    private readonly ram: GuestRam,
    config: QueueConfig,
    /** VIRTIO_F_RING_EVENT_IDX was negotiated: used_event / avail_event replace the flags. */
    readonly eventIdx: boolean,
    state: SplitQueueState = { nextAvail: 0, nextUsed: 0 },
  ) {
    const { size, descTable, availRing, usedRing } = config
    if (!config.ready) throw new VirtqueueError('queue is not ready')
    if (!isPow2(size) || size > VIRTQ_MAX_SIZE) {
      throw new VirtqueueError(`queue size ${size} is not a power of 2 in [1, ${VIRTQ_MAX_SIZE}]`)
    }
    const areas: [string, number, number, number][] = [
      ['descriptor table', descTable, DESC_SIZE * size, 16],
      ['available ring', availRing, 6 + 2 * size, 2],
      ['used ring', usedRing, 6 + 8 * size, 4],
    ]
    for (const [what, addr, len, align] of areas) {
      if (addr % align !== 0) throw new VirtqueueError(`${what} at ${hex(addr)} is not ${align}-byte aligned`)
      if (!ram.contains(addr, len)) throw new VirtqueueError(`${what} ${hex(addr)}+${len} is outside guest RAM`)
    }
    this.size = size
    this.desc = descTable
    this.avail = availRing
    this.used = usedRing
    this._nextAvail = state.nextAvail & 0xffff
    this._nextUsed = state.nextUsed & 0xffff
    this.signalledUsed = this._nextUsed
  }

  get nextAvail(): number {
    return this._nextAvail
  }

  get nextUsed(): number {
    return this._nextUsed
  }

  /** Set when the driver broke the ring protocol; the queue then yields nothing until reset. */
  get broken(): string | undefined {
    return this._broken
  }

  get state(): SplitQueueState {
    return { nextAvail: this._nextAvail, nextUsed: this._nextUsed }
  }

  /** Chains the driver made available that we have not popped yet. */
  pending(): number {
    if (this._broken) return 0
    const n = (this.ram.readU16(this.avail + 2) - this._nextAvail) & 0xffff
    if (n > this.size) {
      this._broken = `avail.idx is ${n} entries ahead of the device, more than the queue size ${this.size}`
      return 0
    }
    return n
  }

  /**
   * The next available chain, or undefined when the ring is empty. A malformed chain (loop, index
   * or address out of range, indirect descriptor) is still returned, with `malformed` set, so the
   * caller can complete it; popping never throws on guest-controlled data.
   */
  popAvail(): DescriptorChain | undefined {
    if (this.pending() === 0) return undefined
    const head = this.ram.readU16(this.avail + 4 + 2 * (this._nextAvail & (this.size - 1)))
    this._nextAvail = (this._nextAvail + 1) & 0xffff
    return this.walk(head)
  }

  private walk(head: number): DescriptorChain {
    const descriptors: Descriptor[] = []
    if (head >= this.size) return { head, descriptors, complete: false, malformed: `head index ${head} is not below the queue size ${this.size}` }
    let malformed: string | undefined
    let index = head
    for (;;) {
      // Each index is below size, so a chain longer than size must revisit one: a loop (§2.7.5.2).
      if (descriptors.length === this.size) {
        return { head, descriptors, complete: false, malformed: `chain is longer than the queue size ${this.size} (a loop)` }
      }
      const base = this.desc + DESC_SIZE * index
      const addr64 = this.ram.readU64(base)
      const len = this.ram.readU32(base + 8)
      const flags = this.ram.readU16(base + 12)
      const next = this.ram.readU16(base + 14)
      const addr = addr64 <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(addr64) : Number.MAX_SAFE_INTEGER
      const inRam = addr64 <= BigInt(Number.MAX_SAFE_INTEGER) && this.ram.contains(addr, len)
      descriptors.push({ index, addr, len, flags, inRam })
      if (!malformed && (flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        malformed = `descriptor ${index} is indirect, but VIRTIO_F_INDIRECT_DESC was not offered`
      }
      if (!malformed && !inRam) malformed = `descriptor ${index} buffer 0x${addr64.toString(16)}+${len} is outside guest RAM`
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return { head, descriptors, complete: true, malformed }
      if (next >= this.size) {
        return { head, descriptors, complete: false, malformed: `descriptor ${index} links to ${next}, not below the queue size ${this.size}` }
      }
      index = next
    }
  }

  /** Returns chain `head` to the driver with `len` bytes written into its device-writable buffers. */
  addUsed(head: number, len: number): void {
    const slot = this.used + 4 + 8 * (this._nextUsed & (this.size - 1))
    this.ram.writeU32(slot, head)
    this.ram.writeU32(slot + 4, len)
    this._nextUsed = (this._nextUsed + 1) & 0xffff
    this.ram.writeU16(this.used + 2, this._nextUsed)
    this.addedSinceCheck++
  }

  /**
   * Whether the driver wants a used-buffer notification for the entries added since the last call
   * (§2.7.10 with EVENT_IDX: used.idx passed used_event; otherwise avail.flags lacks NO_INTERRUPT).
   */
  needsNotification(): boolean {
    if (this.addedSinceCheck === 0) return false
    const wrapped = this.addedSinceCheck >= 0x10000
    this.addedSinceCheck = 0
    fence()
    if (!this.eventIdx) return (this.ram.readU16(this.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0
    const usedEvent = this.ram.readU16(this.avail + 4 + 2 * this.size)
    const old = this.signalledUsed
    this.signalledUsed = this._nextUsed
    return wrapped || needEvent(usedEvent, this._nextUsed, old)
  }

  /**
   * Asks the driver to notify (kick) on the next available chain: with EVENT_IDX by publishing
   * avail_event = the next index we will pop, otherwise by clearing used.flags NO_NOTIFY. Returns
   * true when chains arrived meanwhile (the driver may have skipped its kick), so the caller must
   * drain again instead of sleeping.
   */
  enableNotification(): boolean {
    if (this.eventIdx) this.ram.writeU16(this.used + 4 + 8 * this.size, this._nextAvail)
    else this.ram.writeU16(this.used, 0)
    fence()
    return this.pending() > 0
  }

  /** Asks the driver not to kick while we are draining anyway (only meaningful without EVENT_IDX). */
  disableNotification(): void {
    if (!this.eventIdx) this.ram.writeU16(this.used, VIRTQ_USED_F_NO_NOTIFY)
  }
}
