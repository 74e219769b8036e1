// The guest RAM a virtio device needs: bounds-checked little-endian access by guest physical
// address, and the host address of a contiguous range (for iovecs that point into guest RAM).
// Kept small so a fuller GuestMemory (src/vm/kvm/memory/) can satisfy it.
import { koffi } from '../../../../native-shims/koffi.js'
import { view } from '../../../../native-shims/libc.js'

export interface GuestRam {
  /** True when [gpa, gpa+len) lies inside one contiguous region (so hostAddress works on it). */
  contains(gpa: number, len: number): boolean
  read(gpa: number, dst: Uint8Array): void
  write(gpa: number, src: Uint8Array): void
  /**
   * Naturally aligned u16/u32 accesses must be single loads/stores: ring indices are read and
   * written while the guest runs on other CPUs.
   */
  readU16(gpa: number): number
  readU32(gpa: number): number
  readU64(gpa: number): bigint
  writeU16(gpa: number, value: number): void
  writeU32(gpa: number, value: number): void
  writeU64(gpa: number, value: bigint): void
  /** Host pointer of the first byte of [gpa, gpa+len), which must be contiguous in host memory. */
  hostAddress(gpa: number, len: number): bigint
}

/** Guest RAM that can also be handed to a worker thread (RegionGuestRam, GuestMemory). */
export interface ShareableGuestRam extends GuestRam {
  workerRegions(): GuestRamRegion[]
}

export class GuestRamError extends RangeError {
  override readonly name = 'GuestRamError'
}

/**
 * One region of guest RAM, in a form that crosses to a worker thread (structured clone): a
 * SharedArrayBuffer (optionally a slice of it), or a native mapping (mmap) by address and length
 * (at most 4 GiB per region: see view() in native-shims/libc.ts).
 */
export type GuestRamRegion =
  | { readonly gpa: number; readonly sab: SharedArrayBuffer; readonly offset?: number; readonly len?: number }
  | { readonly gpa: number; readonly addr: bigint; readonly len: number }

/**
 * The host address of [gpa, gpa+len) when it spans regions adjacent in guest-physical space and
 * contiguous in host memory too (one mmap seen through several views: a view is at most 4 GiB);
 * undefined otherwise. `maps` are sorted by guest address.
 */
export function hostSpan<M>(maps: readonly M[], gpa: number, len: number, range: (m: M) => [number, number], host: (m: M) => bigint): bigint | undefined {
  if (!(gpa >= 0 && len > 0 && Number.isSafeInteger(gpa + len))) return undefined
  let i = maps.findIndex((m) => gpa >= range(m)[0] && gpa < range(m)[1])
  if (i < 0) return undefined
  const addr = host(maps[i]!) + BigInt(gpa - range(maps[i]!)[0])
  let end = range(maps[i]!)[1]
  while (end < gpa + len) {
    const next = maps[++i]
    if (!next || range(next)[0] !== end || host(next) !== addr + BigInt(end - gpa)) return undefined
    end = range(next)[1]
  }
  return addr
}

interface Mapped {
  gpa: number
  end: number
  bytes: Uint8Array
  dv: DataView
  /** Whole-element views for single-copy u16/u32 access; offsets are relative to `bytes`. */
  u16: Uint16Array | undefined
  u32: Uint32Array | undefined
  host: () => bigint
}

const hex = (n: number) => `0x${n.toString(16)}`

/** GuestRam over one or more regions. Little-endian host assumed (x86_64, arm64). */
export class RegionGuestRam implements GuestRam {
  private readonly maps: Mapped[]
  private last: Mapped

  constructor(readonly regions: readonly GuestRamRegion[]) {
    if (regions.length === 0) throw new GuestRamError('guest RAM needs at least one region')
    this.maps = regions.map(mapRegion).sort((a, b) => a.gpa - b.gpa)
    for (let i = 1; i < this.maps.length; i++) {
      if (this.maps[i]!.gpa < this.maps[i - 1]!.end) throw new GuestRamError(`guest RAM regions overlap at ${hex(this.maps[i]!.gpa)}`)
    }
    this.last = this.maps[0]!
  }

  private find(gpa: number, len: number): Mapped | undefined {
    if (!(gpa >= 0 && len >= 0 && Number.isSafeInteger(gpa) && Number.isSafeInteger(len))) return undefined
    const end = gpa + len
    if (gpa >= this.last.gpa && end <= this.last.end) return this.last
    for (const m of this.maps) {
      if (gpa >= m.gpa && end <= m.end) return (this.last = m)
    }
    return undefined
  }

  private at(gpa: number, len: number): Mapped {
    const m = this.find(gpa, len)
    if (!m) throw new GuestRamError(`guest range ${hex(gpa)}+${len} is outside guest RAM`)
    return m
  }

  contains(gpa: number, len: number): boolean {
    return this.find(gpa, len) !== undefined || this.span(gpa, len) !== undefined
  }

  private span(gpa: number, len: number): bigint | undefined {
    return hostSpan(this.maps, gpa, len, (m) => [m.gpa, m.end], (m) => m.host())
  }

  /** Calls fn for each region's piece of [gpa, gpa+len), which may span host-contiguous regions. */
  private pieces(gpa: number, len: number, fn: (m: Mapped, off: number, n: number, done: number) => void): void {
    const one = this.find(gpa, len)
    if (one) return fn(one, gpa - one.gpa, len, 0)
    if (this.span(gpa, len) === undefined) throw new GuestRamError(`guest range ${hex(gpa)}+${len} is outside guest RAM`)
    for (let done = 0; done < len; ) {
      const m = this.at(gpa + done, 1)
      const n = Math.min(len - done, m.end - (gpa + done))
      fn(m, gpa + done - m.gpa, n, done)
      done += n
    }
  }

  read(gpa: number, dst: Uint8Array): void {
    this.pieces(gpa, dst.length, (m, off, n, done) => dst.set(m.bytes.subarray(off, off + n), done))
  }

  write(gpa: number, src: Uint8Array): void {
    this.pieces(gpa, src.length, (m, off, n, done) => m.bytes.set(src.subarray(done, done + n), off))
  }

  readU16(gpa: number): number {
    const m = this.at(gpa, 2)
    const off = gpa - m.gpa
    return m.u16 && (off & 1) === 0 ? Atomics.load(m.u16, off >>> 1) : m.dv.getUint16(off, true)
  }

  readU32(gpa: number): number {
    const m = this.at(gpa, 4)
    const off = gpa - m.gpa
    return m.u32 && (off & 3) === 0 ? Atomics.load(m.u32, off >>> 2) : m.dv.getUint32(off, true)
  }

  readU64(gpa: number): bigint {
    const m = this.at(gpa, 8)
    return m.dv.getBigUint64(gpa - m.gpa, true)
  }

  writeU16(gpa: number, value: number): void {
    const m = this.at(gpa, 2)
    const off = gpa - m.gpa
    if (m.u16 && (off & 1) === 0) Atomics.store(m.u16, off >>> 1, value)
    else m.dv.setUint16(off, value, true)
  }

  writeU32(gpa: number, value: number): void {
    const m = this.at(gpa, 4)
    const off = gpa - m.gpa
    if (m.u32 && (off & 3) === 0) Atomics.store(m.u32, off >>> 2, value)
    else m.dv.setUint32(off, value, true)
  }

  writeU64(gpa: number, value: bigint): void {
    const m = this.at(gpa, 8)
    m.dv.setBigUint64(gpa - m.gpa, value, true)
  }

  hostAddress(gpa: number, len: number): bigint {
    const m = this.find(gpa, len)
    if (m) return m.host() + BigInt(gpa - m.gpa)
    const addr = this.span(gpa, len)
    if (addr === undefined) throw new GuestRamError(`guest range ${hex(gpa)}+${len} is outside guest RAM`)
    return addr
  }

  /** The regions, to hand this RAM to a worker thread (as GuestMemory.workerRegions()). */
  workerRegions(): GuestRamRegion[] {
    return [...this.regions]
  }
}

function mapRegion(r: GuestRamRegion): Mapped {
  let bytes: Uint8Array
  let host: () => bigint
  if ('sab' in r) {
    const offset = r.offset ?? 0
    const len = r.len ?? r.sab.byteLength - offset
    bytes = new Uint8Array(r.sab, offset, len)
    let addr: bigint | undefined
    // A SharedArrayBuffer's memory never moves, so its address stays valid while it lives.
    host = () => (addr ??= koffi().address(bytes))
  } else {
    bytes = new Uint8Array(view(r.addr, r.len))
    host = () => r.addr
  }
  if (!Number.isSafeInteger(r.gpa) || r.gpa < 0) throw new GuestRamError(`guest RAM region at ${r.gpa} is not a valid address`)
  const aligned = (n: number) => bytes.byteOffset % n === 0
  return {
    gpa: r.gpa,
    end: r.gpa + bytes.length,
    bytes,
    dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    u16: aligned(2) ? new Uint16Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 2)) : undefined,
    u32: aligned(4) ? new Uint32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4)) : undefined,
    host,
  }
}
