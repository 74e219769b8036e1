/**
 * Guest RAM as the VMM sees it: one or more host byte regions, each mapped at a guest-physical
 * base. Every access is bounds-checked and throws GuestMemoryError when any byte falls outside
 * RAM; device code catches it and turns it into a device error (a failed request, a broken
 * queue, DEVICE_NEEDS_RESET), never a VMM crash.
 *
 * Regions may be ArrayBuffer/SharedArrayBuffer-backed (tests) or views over an mmap'd mapping
 * (`koffi.view`, at most 4 GiB each, so big guests use several regions: host-ram.ts).
 * Byte-range reads and writes may cross between regions that are adjacent in guest-physical
 * space, `contains` and `hostAddress` when they are contiguous in host memory too (views of one
 * mapping); `view` (zero-copy) may not. Little-endian host assumed (x86_64).
 *
 * Another thread (a blk thread) sees the same RAM through `GuestMemory.from(memory.describe())`:
 * the description crosses threads by structured clone.
 */
import { koffi } from '../../../native-shims/koffi.js'
import { view } from '../../../native-shims/libc.js'
import { hex } from './address.js'

export class GuestMemoryError extends RangeError {
  override readonly name = 'GuestMemoryError'
  constructor(
    readonly address: number,
    readonly length: number,
    what = 'is outside guest RAM',
  ) {
    super(`guest range ${hex(address)}+${length} ${what}`)
  }
}

export interface GuestRegion {
  /** Guest-physical address of bytes[0]. */
  readonly base: number
  readonly bytes: Uint8Array
  /** Host address of bytes[0] when it is native memory (mmap); computed with koffi otherwise. */
  readonly hostAddress?: bigint
}

/**
 * One region as it crosses to another thread (structured clone): a SharedArrayBuffer (optionally
 * a slice of it), or a native mapping (mmap) by address and length (at most 4 GiB: view() in
 * native-shims/libc.ts).
 */
export type SharedGuestRegion =
  | { readonly base: number; readonly sab: SharedArrayBuffer; readonly offset?: number; readonly len?: number }
  | { readonly base: number; readonly addr: bigint; readonly len: number }

export type GuestMemoryDescription = readonly SharedGuestRegion[]

/** The accesses a virtio device makes: what the virtqueue, virtio-blk and virtio-console take (tests wrap it). */
export type GuestRam = Pick<GuestMemory, 'contains' | 'read' | 'write' | 'readU16' | 'readU32' | 'readU64' | 'writeU16' | 'writeU32' | 'writeU64' | 'hostAddress'>

interface Mapped {
  readonly base: number
  readonly end: number
  readonly bytes: Uint8Array
  readonly dv: DataView
  /** Element views for single-copy aligned u16/u32 access (ring indices change under us). */
  readonly u16: Uint16Array | undefined
  readonly u32: Uint32Array | undefined
  host: bigint | undefined
}

export class GuestMemory {
  private maps: Mapped[]
  private last: Mapped
  private released = false

  constructor(regions: readonly GuestRegion[]) {
    if (regions.length === 0) throw new RangeError('guest memory needs at least one region')
    this.maps = regions.map(toMapped).sort((a, b) => a.base - b.base)
    for (let i = 1; i < this.maps.length; i++) {
      if (this.maps[i]!.base < this.maps[i - 1]!.end) {
        throw new RangeError(`guest memory regions overlap at ${hex(this.maps[i]!.base)}`)
      }
    }
    this.last = this.maps[0]!
  }

  /** Zero-filled memory for the given ranges; `shared` backs it with SharedArrayBuffers (so another thread can share it). */
  static allocate(ranges: readonly { base: number; size: number }[], opts: { shared?: boolean } = {}): GuestMemory {
    return new GuestMemory(
      ranges.map((r) => ({
        base: r.base,
        bytes: new Uint8Array(opts.shared ? new SharedArrayBuffer(r.size) : new ArrayBuffer(r.size)),
      })),
    )
  }

  /** The same RAM from a description (describe()), in this thread. */
  static from(description: GuestMemoryDescription): GuestMemory {
    return new GuestMemory(
      description.map((r) => {
        if ('addr' in r) return { base: r.base, bytes: new Uint8Array(view(r.addr, r.len)), hostAddress: r.addr }
        const offset = r.offset ?? 0
        return { base: r.base, bytes: new Uint8Array(r.sab, offset, r.len ?? r.sab.byteLength - offset) }
      }),
    )
  }

  get regions(): readonly GuestRegion[] {
    return this.maps.map((m) => ({ base: m.base, bytes: m.bytes, ...(m.host !== undefined && { hostAddress: m.host }) }))
  }

  /** Total bytes of RAM over all regions. */
  get size(): number {
    return this.maps.reduce((n, m) => n + m.bytes.length, 0)
  }

  /**
   * Forget the regions before their memory goes (munmap): every later access throws
   * GuestMemoryError instead of touching unmapped memory, so a reader that outlives the VM (a
   * monitor sampling the guest) gets an error, not a SIGSEGV.
   */
  release(): void {
    this.released = true
    this.maps = []
    this.last = EMPTY
  }

  /** The regions are gone (release()): the VM has exited. */
  get isReleased(): boolean {
    return this.released
  }

  /** The region holding all of [gpa, gpa+len), or undefined. */
  private find(gpa: number, len: number): Mapped | undefined {
    if (!(gpa >= 0 && len >= 0 && Number.isSafeInteger(gpa) && Number.isSafeInteger(len))) return undefined
    const end = gpa + len
    if (gpa >= this.last.base && end <= this.last.end) return this.last
    for (const m of this.maps) if (gpa >= m.base && end <= m.end) return (this.last = m)
    return undefined
  }

  private at(gpa: number, len: number): Mapped {
    const m = this.find(gpa, len)
    if (!m) throw new GuestMemoryError(gpa, len, this.whyNot(gpa, len))
    return m
  }

  /**
   * [gpa, gpa+len) lies in one region, or spans regions contiguous in host memory too (so
   * `hostAddress` works on it; `view` needs one region).
   */
  contains(gpa: number, len: number): boolean {
    return this.find(gpa, len) !== undefined || this.span(gpa, len) !== undefined
  }

  /**
   * The host address of [gpa, gpa+len) when it spans regions adjacent in guest-physical space and
   * contiguous in host memory too (one mmap seen through several views); undefined otherwise.
   */
  private span(gpa: number, len: number): bigint | undefined {
    if (!(gpa >= 0 && len > 0 && Number.isSafeInteger(gpa + len))) return undefined
    let i = this.maps.findIndex((m) => gpa >= m.base && gpa < m.end)
    if (i < 0) return undefined
    const addr = hostOf(this.maps[i]!) + BigInt(gpa - this.maps[i]!.base)
    let end = this.maps[i]!.end
    while (end < gpa + len) {
      const next = this.maps[++i]
      if (!next || next.base !== end || hostOf(next) !== addr + BigInt(end - gpa)) return undefined
      end = next.end
    }
    return addr
  }

  /** Every byte of [gpa, gpa+len) is RAM, possibly spread over adjacent regions. */
  isMapped(gpa: number, len: number): boolean {
    try {
      this.pieces(gpa, len)
      return true
    } catch {
      return false
    }
  }

  /** Zero-copy view of [gpa, gpa+len); it must lie in one region. */
  view(gpa: number, len: number): Uint8Array {
    const m = this.at(gpa, len)
    return m.bytes.subarray(gpa - m.base, gpa - m.base + len)
  }

  /** Zero-copy views covering [gpa, gpa+len) across adjacent regions (for vectored I/O). */
  views(gpa: number, len: number): Uint8Array[] {
    return this.pieces(gpa, len).map(([m, off, n]) => m.bytes.subarray(off, off + n))
  }

  private pieces(gpa: number, len: number): [Mapped, number, number][] {
    const fast = this.find(gpa, len)
    if (fast) return [[fast, gpa - fast.base, len]]
    if (!(gpa >= 0 && len >= 0 && Number.isSafeInteger(gpa) && Number.isSafeInteger(len))) {
      throw new GuestMemoryError(gpa, len, this.outside())
    }
    const out: [Mapped, number, number][] = []
    let cur = gpa
    const end = gpa + len
    while (cur < end) {
      const m = this.maps.find((r) => cur >= r.base && cur < r.end)
      if (!m) throw new GuestMemoryError(gpa, len, this.outside())
      const n = Math.min(end, m.end) - cur
      out.push([m, cur - m.base, n])
      cur += n
    }
    return out
  }

  read(gpa: number, dst: Uint8Array): void {
    let done = 0
    for (const [m, off, n] of this.pieces(gpa, dst.length)) {
      dst.set(m.bytes.subarray(off, off + n), done)
      done += n
    }
  }

  /** A copy of [gpa, gpa+len). */
  readBytes(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len)
    this.read(gpa, out)
    return out
  }

  write(gpa: number, src: Uint8Array): void {
    let done = 0
    for (const [m, off, n] of this.pieces(gpa, src.length)) {
      m.bytes.set(src.subarray(done, done + n), off)
      done += n
    }
  }

  fill(gpa: number, len: number, value = 0): void {
    for (const [m, off, n] of this.pieces(gpa, len)) m.bytes.fill(value, off, off + n)
  }

  readU8(gpa: number): number {
    const m = this.at(gpa, 1)
    return m.bytes[gpa - m.base]!
  }

  readU16(gpa: number): number {
    const m = this.find(gpa, 2)
    if (!m) return this.slowRead(gpa, 2)
    const off = gpa - m.base
    return m.u16 && (off & 1) === 0 ? Atomics.load(m.u16, off >>> 1) : m.dv.getUint16(off, true)
  }

  readU32(gpa: number): number {
    const m = this.find(gpa, 4)
    if (!m) return this.slowRead(gpa, 4)
    const off = gpa - m.base
    return m.u32 && (off & 3) === 0 ? Atomics.load(m.u32, off >>> 2) : m.dv.getUint32(off, true)
  }

  readU64(gpa: number): bigint {
    const m = this.find(gpa, 8)
    if (!m) return new DataView(this.readBytes(gpa, 8).buffer).getBigUint64(0, true)
    return m.dv.getBigUint64(gpa - m.base, true)
  }

  writeU8(gpa: number, value: number): void {
    const m = this.at(gpa, 1)
    m.bytes[gpa - m.base] = value
  }

  writeU16(gpa: number, value: number): void {
    const m = this.find(gpa, 2)
    if (!m) return this.slowWrite(gpa, 2, value)
    const off = gpa - m.base
    if (m.u16 && (off & 1) === 0) Atomics.store(m.u16, off >>> 1, value)
    else m.dv.setUint16(off, value, true)
  }

  writeU32(gpa: number, value: number): void {
    const m = this.find(gpa, 4)
    if (!m) return this.slowWrite(gpa, 4, value)
    const off = gpa - m.base
    if (m.u32 && (off & 3) === 0) Atomics.store(m.u32, off >>> 2, value >>> 0)
    else m.dv.setUint32(off, value >>> 0, true)
  }

  writeU64(gpa: number, value: bigint | number): void {
    const v = BigInt.asUintN(64, BigInt(value))
    const m = this.find(gpa, 8)
    if (m) return m.dv.setBigUint64(gpa - m.base, v, true)
    const tmp = new Uint8Array(8)
    new DataView(tmp.buffer).setBigUint64(0, v, true)
    this.write(gpa, tmp)
  }

  private slowRead(gpa: number, n: 2 | 4): number {
    const b = this.readBytes(gpa, n)
    const dv = new DataView(b.buffer)
    return n === 2 ? dv.getUint16(0, true) : dv.getUint32(0, true)
  }

  private slowWrite(gpa: number, n: 2 | 4, value: number): void {
    const b = new Uint8Array(n)
    const dv = new DataView(b.buffer)
    if (n === 2) dv.setUint16(0, value, true)
    else dv.setUint32(0, value >>> 0, true)
    this.write(gpa, b)
  }

  private outside(): string {
    return this.released ? 'is gone: the VM has exited and its RAM was unmapped' : 'is outside guest RAM'
  }

  private whyNot(gpa: number, len: number): string {
    return !this.released && this.isMapped(gpa, len) ? 'crosses a region boundary' : this.outside()
  }

  /** Host pointer of gpa; [gpa, gpa+len) must be contiguous in host memory (see contains). */
  hostAddress(gpa: number, len: number): bigint {
    const m = this.find(gpa, len)
    if (m) return hostOf(m) + BigInt(gpa - m.base)
    const addr = this.span(gpa, len)
    if (addr === undefined) throw new GuestMemoryError(gpa, len, !this.released && this.isMapped(gpa, len) ? 'is not contiguous in host memory' : this.outside())
    return addr
  }

  /**
   * The regions as a structured-clonable description for another thread (GuestMemory.from): a
   * SharedArrayBuffer slice, or a native address. ArrayBuffer-backed memory cannot be shared.
   */
  describe(): SharedGuestRegion[] {
    if (this.released) throw new GuestMemoryError(0, 0, this.outside())
    return this.maps.map((m) => {
      if (m.bytes.buffer instanceof SharedArrayBuffer) {
        return { base: m.base, sab: m.bytes.buffer, offset: m.bytes.byteOffset, len: m.bytes.byteLength }
      }
      if (m.host !== undefined) return { base: m.base, addr: m.host, len: m.bytes.byteLength }
      throw new RangeError(`guest memory region at ${hex(m.base)} is neither shared nor native memory`)
    })
  }
}

const EMPTY: Mapped = { base: 0, end: -1, bytes: new Uint8Array(0), dv: new DataView(new ArrayBuffer(0)), u16: undefined, u32: undefined, host: undefined }

/** A SharedArrayBuffer's memory never moves, so its address stays valid while it lives. */
function hostOf(m: Mapped): bigint {
  return (m.host ??= koffi().address(m.bytes) as bigint)
}

function toMapped(r: GuestRegion): Mapped {
  if (!Number.isSafeInteger(r.base) || r.base < 0) throw new RangeError(`guest region base ${r.base} is not an address`)
  const b = r.bytes
  const aligned = (n: number) => b.byteOffset % n === 0
  return {
    base: r.base,
    end: r.base + b.length,
    bytes: b,
    dv: new DataView(b.buffer, b.byteOffset, b.byteLength),
    u16: aligned(2) ? new Uint16Array(b.buffer, b.byteOffset, Math.floor(b.byteLength / 2)) : undefined,
    u32: aligned(4) ? new Uint32Array(b.buffer, b.byteOffset, Math.floor(b.byteLength / 4)) : undefined,
    host: r.hostAddress,
  }
}
