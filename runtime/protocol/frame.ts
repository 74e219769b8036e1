/**
 * Frames on the host↔guest byte stream (a virtio-serial port, or a socketpair in tests).
 *
 *   0  u16 magic 0x4b54 ("KT")      resynchronisation is never attempted: a bad magic is corruption
 *   2  u8  type   (FrameType)
 *   3  u8  stream (DATA frames: which stdio stream; RELAY frames: the connection; 0 otherwise)
 *   4  u32 payload length
 *   8  u32 CRC-32 over bytes 2..8 and the payload
 *  12  payload
 * All integers big-endian.
 */
import { crc32 } from 'node:zlib'

export const FRAME_MAGIC = 0x4b54
export const FRAME_HEADER_BYTES = 12
/** Larger frames are refused on both ends: a corrupt length must not make us buffer gigabytes. */
export const MAX_FRAME_PAYLOAD = 64 * 1024 * 1024

export const FrameType = {
  /** JSON control message (protocol/messages.ts). */
  Control: 1,
  /** Raw bytes of one stdio stream (stream id in the header); an empty payload closes the stream. */
  Data: 2,
  /** A v8-serialized Vitest worker message (opaque to the channel). */
  Vitest: 3,
  /** One TCP connection relayed between host and guest (stream = connection id; relay.ts). */
  Relay: 4,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/** Data frame streams: the command's stdio, and the per-run archive sent to a restored guest (host → guest). */
export const StreamId = { Stdin: 0, Stdout: 1, Stderr: 2, RunArchive: 3 } as const
export type StreamId = (typeof StreamId)[keyof typeof StreamId]
/** Bytes per Data frame of a per-run archive (StreamId.RunArchive). */
const RUN_ARCHIVE_CHUNK = 1 << 20

/** A per-run archive in the pieces its Data frames carry, each at most RUN_ARCHIVE_CHUNK bytes. */
export function* runArchiveChunks(archive: Buffer): Generator<Buffer> {
  for (let off = 0; off < archive.length; off += RUN_ARCHIVE_CHUNK) yield archive.subarray(off, off + RUN_ARCHIVE_CHUNK)
}

export interface Frame {
  type: FrameType
  stream: number
  payload: Buffer
}

export class FrameError extends Error {
  override readonly name = 'FrameError'
  constructor(
    readonly reason: 'magic' | 'crc' | 'too-large' | 'type',
    message: string,
  ) {
    super(message)
  }
}

const KNOWN_TYPES = new Set<number>(Object.values(FrameType))

export function encodeFrame(type: FrameType, payload: Uint8Array, stream = 0): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) {
    throw new FrameError('too-large', `frame payload of ${payload.length} bytes exceeds ${MAX_FRAME_PAYLOAD}`)
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length)
  out.writeUInt16BE(FRAME_MAGIC, 0)
  out.writeUInt8(type, 2)
  out.writeUInt8(stream, 3)
  out.writeUInt32BE(payload.length, 4)
  out.set(payload, FRAME_HEADER_BYTES)
  out.writeUInt32BE(frameCrc(out.subarray(2, 8), payload), 8)
  return out
}

function frameCrc(header: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(header)) >>> 0
}

/**
 * Follows frame boundaries on a byte stream without decoding it: once a frame's header is in, how
 * many bytes of it are still to come. The sender writes whole frames, so a reader may wait for
 * those without anything else to do first (runtime/init/channel.ts). Corruption is the
 * decoder's to report: from a bad header on, the tracker expects nothing.
 */
export class FrameTracker {
  private readonly head = Buffer.alloc(FRAME_HEADER_BYTES)
  private headBytes = 0
  private bodyLeft = 0
  private lost = false

  feed(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length && !this.lost; ) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - i)
        this.bodyLeft -= n
        i += n
        continue
      }
      const n = Math.min(FRAME_HEADER_BYTES - this.headBytes, chunk.length - i)
      this.head.set(chunk.subarray(i, i + n), this.headBytes)
      this.headBytes += n
      i += n
      if (this.headBytes < FRAME_HEADER_BYTES) continue
      this.headBytes = 0
      const length = this.head.readUInt32BE(4)
      if (this.head.readUInt16BE(0) !== FRAME_MAGIC || length > MAX_FRAME_PAYLOAD) this.lost = true
      else this.bodyLeft = length
    }
  }

  /** Bytes of the frame in progress still to come: 0 between frames, within a header, or after corruption. */
  get remaining(): number {
    return this.lost ? 0 : this.bodyLeft
  }
}

/** What one chunk of input yielded: its whole frames, in order, and the corruption that ended the stream. */
export interface FrameBatch {
  frames: Frame[]
  error?: FrameError
}

/**
 * Incremental decoder: feed it chunks as they arrive, get whole frames back.
 * After the first error it stays broken (every later call reports the same error): a stream that
 * lost sync cannot be trusted again. Frames before the corruption are still returned.
 */
export class FrameDecoder {
  private chunks: Buffer[] = []
  private buffered = 0
  private failure: FrameError | undefined

  /** Never throws: the frames this chunk completed, and the error if the stream is (now) corrupt. */
  decode(chunk: Uint8Array): FrameBatch {
    if (this.failure) return { frames: [], error: this.failure }
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length))
      this.buffered += chunk.length
    }
    const frames: Frame[] = []
    try {
      for (;;) {
        const frame = this.next()
        if (!frame) break
        frames.push(frame)
      }
    } catch (e) {
      this.failure = e as FrameError
      return { frames, error: this.failure }
    }
    return { frames }
  }

  /**
   * decode() that throws the corruption: at once when no frame came before it in this chunk,
   * otherwise at the next push (so no good frame is lost).
   */
  push(chunk: Uint8Array): Frame[] {
    const { frames, error } = this.decode(chunk)
    if (error && frames.length === 0) throw error
    return frames
  }

  /** Bytes received but not yet part of a whole frame. */
  get pending(): number {
    return this.buffered
  }

  private next(): Frame | undefined {
    if (this.buffered < FRAME_HEADER_BYTES) return undefined
    const head = this.peek(FRAME_HEADER_BYTES)
    const magic = head.readUInt16BE(0)
    if (magic !== FRAME_MAGIC) {
      const text = JSON.stringify(head.toString('latin1'))
      throw new FrameError('magic', `channel corrupted: expected a frame, got bytes ${text}`)
    }
    const type = head.readUInt8(2)
    if (!KNOWN_TYPES.has(type)) throw new FrameError('type', `channel corrupted: unknown frame type ${type}`)
    const length = head.readUInt32BE(4)
    if (length > MAX_FRAME_PAYLOAD) {
      throw new FrameError('too-large', `channel corrupted: frame length ${length} exceeds ${MAX_FRAME_PAYLOAD}`)
    }
    if (this.buffered < FRAME_HEADER_BYTES + length) return undefined
    const whole = this.take(FRAME_HEADER_BYTES + length)
    const payload = whole.subarray(FRAME_HEADER_BYTES)
    const expected = whole.readUInt32BE(8)
    const actual = frameCrc(whole.subarray(2, 8), payload)
    if (expected !== actual) {
      throw new FrameError('crc', `channel corrupted: CRC mismatch on a ${length}-byte frame (got ${hex(actual)}, header says ${hex(expected)})`)
    }
    return { type: type as FrameType, stream: whole.readUInt8(3), payload }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0]!.subarray(0, n)
  }

  private take(n: number): Buffer {
    const head = this.peek(n)
    const rest = this.chunks[0]!.subarray(n)
    if (rest.length > 0) this.chunks[0] = rest
    else this.chunks.shift()
    this.buffered -= n
    // Copy so the returned payload does not pin a large shared chunk.
    return Buffer.from(head)
  }
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`
