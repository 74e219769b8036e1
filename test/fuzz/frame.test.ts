// Fuzz target: the channel's frame decoder (runtime/protocol/frame.ts), fed valid frames, garbage
// and corrupted frames under arbitrary chunking. It may only return frames that are byte-exact
// copies of well-formed frames in the input, or throw FrameError (and keep throwing it); it never
// buffers past one frame whose header it has accepted.
import { PassThrough } from 'node:stream'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Endpoint } from '../../runtime/protocol/endpoint.js'
import { encodeFrame, FRAME_HEADER_BYTES, FRAME_MAGIC, type Frame, FrameDecoder, FrameError, FrameType, MAX_FRAME_PAYLOAD } from '../../runtime/protocol/frame.js'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import type { GuestMessage, HostMessage } from '../../runtime/protocol/messages.js'
import { chunked, fuzz, isOneLine } from './config.js'

const frameArb = fc.record({
  type: fc.constantFrom(FrameType.Control, FrameType.Data, FrameType.Vitest),
  stream: fc.integer({ min: 0, max: 255 }),
  payload: fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 5000 }) }),
})
type FrameSpec = { type: FrameType; stream: number; payload: Uint8Array }
const encode = (f: FrameSpec) => encodeFrame(f.type, f.payload, f.stream)
const cutsArb = fc.array(fc.nat(), { maxLength: 12 })

/** A header whose magic and type are right, with any length and CRC: the hard case for a decoder. */
const plausibleHeaderArb = fc
  .record({
    type: fc.integer({ min: 0, max: 4 }),
    stream: fc.nat(255),
    len: fc.oneof(fc.nat(64), fc.constant(MAX_FRAME_PAYLOAD), fc.constant(MAX_FRAME_PAYLOAD + 1), fc.nat(0xffffffff)),
    crc: fc.nat(0xffffffff),
  })
  .map(({ type, stream, len, crc }) => {
    const h = Buffer.alloc(FRAME_HEADER_BYTES)
    h.writeUInt16BE(FRAME_MAGIC, 0)
    h.writeUInt8(type, 2)
    h.writeUInt8(stream, 3)
    h.writeUInt32BE(len, 4)
    h.writeUInt32BE(crc, 8)
    return new Uint8Array(h)
  })
const garbageArb = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 40 }), plausibleHeaderArb)

interface Outcome {
  frames: Frame[]
  error: FrameError | undefined
  pending: number
}

/**
 * Feeds `input` cut at `cuts` through decode() (which must never throw), checking after each
 * chunk that what is buffered stays below one frame whose header was accepted.
 */
function decode(input: Uint8Array, cuts: readonly number[]): Outcome {
  const decoder = new FrameDecoder()
  const frames: Frame[] = []
  let pushed = 0
  for (const chunk of chunked(input, cuts)) {
    const batch = decoder.decode(chunk)
    pushed += chunk.length
    frames.push(...batch.frames)
    const e = batch.error
    if (e) {
      expect(e).toBeInstanceOf(FrameError)
      expect(['magic', 'crc', 'too-large', 'type']).toContain(e.reason)
      expect(isOneLine(e.message)).toBe(true)
      // A broken stream stays broken.
      expect(decoder.decode(new Uint8Array(0))).toEqual({ frames: [], error: e })
      expect(() => decoder.push(encode({ type: FrameType.Data, stream: 1, payload: new Uint8Array(1) }))).toThrow(e)
      return { frames, error: e, pending: decoder.pending }
    }
    const pending = decoder.pending
    if (pending >= FRAME_HEADER_BYTES) {
      // The pending bytes start at an accepted header; less than its frame is held, and that is capped.
      const declared = Buffer.from(input.buffer, input.byteOffset, input.length).readUInt32BE(pushed - pending + 4)
      expect(declared).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD)
      expect(pending).toBeLessThan(FRAME_HEADER_BYTES + declared)
    }
  }
  return { frames, error: undefined, pending: decoder.pending }
}

/** Every returned frame is the exact encoding of itself at its place in the input: so its CRC was right. */
function expectExactCopies(input: Uint8Array, frames: Frame[]): number {
  let at = 0
  for (const f of frames) {
    const bytes = encode(f)
    expect(Buffer.from(input.subarray(at, at + bytes.length)).equals(bytes)).toBe(true)
    at += bytes.length
  }
  return at
}

const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts))

describe('fuzz: channel frame decoder', () => {
  fuzz('valid frames round-trip through any chunking', () =>
    fc.property(fc.array(frameArb, { maxLength: 8 }), cutsArb, (specs, cuts) => {
      const input = concat(specs.map(encode))
      const out = decode(input, cuts)
      expect(out.error).toBeUndefined()
      expect(out.pending).toBe(0)
      expect(out.frames.map((f) => [f.type, f.stream, Buffer.from(f.payload).toString('hex')])).toEqual(
        specs.map((f) => [f.type, f.stream, Buffer.from(f.payload).toString('hex')]),
      )
    }),
  )

  fuzz('garbage after valid frames: the frames before it, then an error or a bounded wait', () =>
    fc.property(fc.array(frameArb, { maxLength: 4 }), garbageArb, fc.array(frameArb, { maxLength: 3 }), cutsArb, (before, garbage, after, cuts) => {
      const prefix = concat(before.map(encode))
      const input = concat([prefix, garbage, ...after.map(encode)])
      const out = decode(input, cuts)
      const consumed = expectExactCopies(input, out.frames)
      // Nothing valid before the garbage is lost or held back.
      expect(out.frames.length).toBeGreaterThanOrEqual(before.length)
      if (!out.error) expect(consumed + out.pending).toBe(input.length)
      // The same bytes in one push give the same result: chunking never changes the outcome.
      const whole = decode(input, [])
      expect(whole.frames.length).toBe(out.frames.length)
      expect(whole.error?.reason).toBe(out.error?.reason)
    }),
  )

  fuzz('arbitrary bytes: FrameError or exact frames, never another exception', () =>
    fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, (input, cuts) => {
      const out = decode(input, cuts)
      const consumed = expectExactCopies(input, out.frames)
      if (!out.error) expect(consumed + out.pending).toBe(input.length)
    }),
  )

  fuzz('a frame with one flipped bit is never returned', () =>
    fc.property(fc.array(frameArb, { maxLength: 3 }), frameArb, fc.nat(), fc.nat(7), fc.array(frameArb, { maxLength: 2 }), cutsArb, (before, victim, pos, bit, after, cuts) => {
      const bad = new Uint8Array(encode(victim))
      const byte = pos % bad.length
      bad[byte]! ^= 1 << bit
      const input = concat([...before.map(encode), bad, ...after.map(encode)])
      const out = decode(input, cuts)
      expectExactCopies(input, out.frames)
      const inLength = byte >= 4 && byte < 8
      // CRC-32 catches every single-bit error at a fixed length; a changed length moves the
      // frame boundary, so then only the frames before it are certain.
      if (inLength) expect(out.frames.length).toBeGreaterThanOrEqual(before.length)
      else {
        expect(out.frames.length).toBe(before.length)
        expect(out.error).toBeInstanceOf(FrameError)
      }
    }),
  )

  fuzz('a declared length over the limit is refused at the header, not buffered', () =>
    fc.property(fc.integer({ min: MAX_FRAME_PAYLOAD + 1, max: 0xffffffff }), frameArb, fc.uint8Array({ maxLength: 64 }), cutsArb, (len, f, tail, cuts) => {
      const head = Buffer.from(encode(f).subarray(0, FRAME_HEADER_BYTES))
      head.writeUInt32BE(len, 4)
      const out = decode(concat([head, tail]), cuts)
      expect(out.error?.reason).toBe('too-large')
      expect(out.frames).toEqual([])
    }),
  )
})

// Found by the target above: a good frame and corruption in one chunk lost the good frame (push
// threw and dropped what it had decoded), so e.g. a guest's last output before garbage vanished.
describe('frames before a corruption in the same chunk', () => {
  const good = encode({ type: FrameType.Data, stream: 1, payload: Buffer.from('last words') })
  const garbage = Buffer.from('not a frame at all')

  it('are returned by the decoder, with the error', () => {
    const batch = new FrameDecoder().decode(Buffer.concat([good, garbage]))
    expect(batch.frames.map((f) => f.payload.toString())).toEqual(['last words'])
    expect(batch.error?.reason).toBe('magic')

    const dec = new FrameDecoder()
    expect(dec.push(Buffer.concat([good, garbage])).map((f) => f.payload.toString())).toEqual(['last words'])
    expect(() => dec.push(new Uint8Array(0))).toThrow(/channel corrupted: expected a frame/)
  })

  it('reach the endpoint listeners before it reports the corruption', async () => {
    const wire = new PassThrough()
    const ep = new Endpoint<GuestMessage, HostMessage>(wire, decodeGuestMessage)
    const events: string[] = []
    ep.on('data', (_s, chunk) => events.push(`data ${chunk.toString()}`))
    const corrupt = new Promise<void>((resolve) =>
      ep.on('corrupt', (e) => {
        events.push(`corrupt ${(e as FrameError).reason}`)
        resolve()
      }),
    )
    wire.write(Buffer.concat([good, garbage]))
    await corrupt
    expect(events).toEqual(['data last words', 'corrupt magic'])
  })
})
