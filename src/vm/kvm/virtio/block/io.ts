// Executes a validated virtio-blk request against a Backing. The rules:
// - writes retry until the whole request landed, advancing past each partial write; no progress
//   or an error is S_IOERR (EINTR is retried), so S_OK always means every byte reached the backing;
// - reads retry on EINTR only; a short read is end of file and the rest is zero-filled;
// - FLUSH is fdatasync.
import type { GuestRam } from '../../../memory/guest-memory.js'
import type { Backing, Iovec } from './backing.js'
import { VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from './constants.js'
import type { BlkRequest, GetIdRequest, Segment, TransferRequest } from './request.js'

export interface Completion {
  readonly status: typeof VIRTIO_BLK_S_OK | typeof VIRTIO_BLK_S_IOERR
  /** Bytes the device wrote into the request's data buffers (the used length is this + 1). */
  readonly written: number
  /** Why it failed, for the debug log. */
  readonly error?: string
}

/** A backing that keeps failing with EINTR is treated as an I/O error rather than spun on forever. */
export const MAX_EINTR_RETRIES = 1000

const errCode = (e: unknown) => (e as { code?: unknown } | null)?.code
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** Calls `fn`, retrying while it throws EINTR. */
function retryEintr<T>(fn: () => T): T {
  for (let i = 0; ; i++) {
    try {
      return fn()
    } catch (e) {
      if (errCode(e) !== 'EINTR' || i >= MAX_EINTR_RETRIES) throw e
    }
  }
}

/** The iovecs past the first `n` bytes. */
export function advanceIovecs(iovecs: readonly Iovec[], n: number): Iovec[] {
  let i = 0
  while (i < iovecs.length && n >= iovecs[i]!.len) n -= iovecs[i++]!.len
  const rest = iovecs.slice(i)
  if (n > 0 && rest.length > 0) rest[0] = { addr: rest[0]!.addr + BigInt(n), len: rest[0]!.len - n }
  return rest
}

function toIovecs(ram: GuestRam, segments: readonly Segment[]): Iovec[] {
  return segments.map((s) => ({ addr: ram.hostAddress(s.gpa, s.len), len: s.len }))
}

/** Writes zeros into the guest buffers from byte `from` of the request on. */
function zeroFrom(ram: GuestRam, segments: readonly Segment[], from: number): void {
  let pos = 0
  for (const s of segments) {
    const start = Math.max(from - pos, 0)
    if (start < s.len) ram.write(s.gpa + start, new Uint8Array(s.len - start))
    pos += s.len
  }
}

function read(ram: GuestRam, backing: Backing, req: TransferRequest): Completion {
  const n = retryEintr(() => backing.preadv(toIovecs(ram, req.segments), req.offset))
  if (!Number.isInteger(n) || n < 0 || n > req.len) return { status: VIRTIO_BLK_S_IOERR, written: 0, error: `preadv returned ${n} for ${req.len} bytes` }
  if (n < req.len) zeroFrom(ram, req.segments, n)
  return { status: VIRTIO_BLK_S_OK, written: req.len }
}

function write(ram: GuestRam, backing: Backing, req: TransferRequest): Completion {
  let iovecs = toIovecs(ram, req.segments)
  let offset = req.offset
  let left = req.len
  while (left > 0) {
    const cur = iovecs
    const at = offset
    const n = retryEintr(() => backing.pwritev(cur, at))
    if (!Number.isInteger(n) || n <= 0 || n > left) {
      return { status: VIRTIO_BLK_S_IOERR, written: 0, error: `pwritev made no progress (${n}) at ${at} with ${left} bytes left` }
    }
    iovecs = advanceIovecs(iovecs, n)
    offset += n
    left -= n
  }
  return { status: VIRTIO_BLK_S_OK, written: 0 }
}

function getId(ram: GuestRam, serial: Uint8Array, req: GetIdRequest): Completion {
  const id = new Uint8Array(VIRTIO_BLK_ID_BYTES)
  id.set(serial.subarray(0, VIRTIO_BLK_ID_BYTES))
  let pos = 0
  for (const s of req.segments) {
    if (pos >= id.length) break
    const chunk = id.subarray(pos, pos + s.len)
    ram.write(s.gpa, chunk)
    pos += chunk.length
  }
  return { status: VIRTIO_BLK_S_OK, written: VIRTIO_BLK_ID_BYTES }
}

/** The 20 bytes GET_ID returns for `serial` (UTF-8, truncated, NUL-padded). */
export function encodeSerial(serial: string): Uint8Array {
  const out = new Uint8Array(VIRTIO_BLK_ID_BYTES)
  out.set(new TextEncoder().encode(serial).subarray(0, VIRTIO_BLK_ID_BYTES))
  return out
}

/** Runs one validated request. Never throws: any failure becomes S_IOERR. */
export function performRequest(ram: GuestRam, backing: Backing, req: BlkRequest, serial: Uint8Array): Completion {
  try {
    switch (req.type) {
      case 'in':
        return read(ram, backing, req)
      case 'out':
        return write(ram, backing, req)
      case 'flush':
        retryEintr(() => backing.syncData())
        return { status: VIRTIO_BLK_S_OK, written: 0 }
      case 'get-id':
        return getId(ram, serial, req)
    }
  } catch (e) {
    return { status: VIRTIO_BLK_S_IOERR, written: 0, error: describe(e) }
  }
}
