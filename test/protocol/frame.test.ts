import { describe, expect, it } from 'vitest'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import {
  decodeHostMessage,
  encodeFrame,
  encodeMessage,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  FrameTracker,
  FrameType,
  MAX_FRAME_PAYLOAD,
  runArchiveChunks,
  StreamId,
} from '../../runtime/protocol/index.js'

const sample = () => [
  encodeFrame(FrameType.Control, encodeMessage({ kind: 'hello', uptimeMs: 12, nodeVersion: 'v20' })),
  encodeFrame(FrameType.Data, Buffer.from('out\n'), StreamId.Stdout),
  encodeFrame(FrameType.Data, Buffer.alloc(0), StreamId.Stdin),
  encodeFrame(FrameType.Vitest, Buffer.from([0xff, 0x0d, 0x00, 0x01])),
]

describe('frame codec', () => {
  it('round-trips frames delivered whole, byte by byte and in odd chunks', () => {
    const wire = Buffer.concat(sample())
    for (const chunk of [wire.length, 1, 5, 13]) {
      const dec = new FrameDecoder()
      const frames = []
      for (let i = 0; i < wire.length; i += chunk) frames.push(...dec.push(wire.subarray(i, i + chunk)))
      expect(frames.map((f) => [f.type, f.stream, f.payload.toString('hex')])).toEqual([
        [FrameType.Control, 0, Buffer.from(JSON.stringify({ kind: 'hello', uptimeMs: 12, nodeVersion: 'v20' })).toString('hex')],
        [FrameType.Data, StreamId.Stdout, Buffer.from('out\n').toString('hex')],
        [FrameType.Data, StreamId.Stdin, ''],
        [FrameType.Vitest, 0, 'ff0d0001'],
      ])
      expect(dec.pending).toBe(0)
    }
  })

  it('keeps a partial frame pending until the rest arrives', () => {
    const f = encodeFrame(FrameType.Data, Buffer.alloc(1000, 7), StreamId.Stderr)
    const dec = new FrameDecoder()
    expect(dec.push(f.subarray(0, 500))).toEqual([])
    expect(dec.pending).toBe(500)
    const [frame] = dec.push(f.subarray(500))
    expect(frame!.payload.equals(Buffer.alloc(1000, 7))).toBe(true)
  })

  it('detects a flipped payload bit through the CRC', () => {
    const f = encodeFrame(FrameType.Data, Buffer.from('hello world'), StreamId.Stdout)
    f[FRAME_HEADER_BYTES + 3]! ^= 0x10
    expect(() => new FrameDecoder().push(f)).toThrow(/CRC mismatch on a 11-byte frame/)
  })

  it('detects a corrupted header field (stream id is covered by the CRC)', () => {
    const f = encodeFrame(FrameType.Data, Buffer.from('x'), StreamId.Stdout)
    f[3] = StreamId.Stderr
    expect(() => new FrameDecoder().push(f)).toThrow(FrameError)
  })

  it('refuses stray bytes, unknown types and absurd lengths, and stays broken afterwards', () => {
    const stray = new FrameDecoder()
    expect(() => stray.push(Buffer.from('hello, this is not a frame'))).toThrow(/expected a frame, got bytes "hello, this "/)
    // poisoned: even a valid frame is refused now
    expect(() => stray.push(sample()[0]!)).toThrow(/expected a frame/)

    const badType = encodeFrame(FrameType.Data, Buffer.from('x'))
    badType[2] = 99
    expect(() => new FrameDecoder().push(badType)).toThrow(/unknown frame type 99/)

    const huge = encodeFrame(FrameType.Data, Buffer.from('x'))
    huge.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 4)
    const err = (() => {
      try {
        new FrameDecoder().push(huge)
      } catch (e) {
        return e as FrameError
      }
    })()
    expect(err?.reason).toBe('too-large')
  })

  it('refuses to encode an oversized payload', () => {
    expect(() => encodeFrame(FrameType.Data, Buffer.alloc(MAX_FRAME_PAYLOAD + 1))).toThrow(/exceeds/)
  })
})

describe('control messages', () => {
  it('decodes the kinds each side may send and rejects the rest', () => {
    expect(decodeGuestMessage(encodeMessage({ kind: 'exit', code: 3, signal: null, uptimeMs: 1 }))).toEqual({
      kind: 'exit',
      code: 3,
      signal: null,
      uptimeMs: 1,
    })
    expect(decodeHostMessage(encodeMessage({ kind: 'shutdown' }))).toEqual({ kind: 'shutdown' })
    expect(() => decodeHostMessage(encodeMessage({ kind: 'exit', code: 0, signal: null, uptimeMs: 0 }))).toThrow(/from the host: unknown kind "exit"/)
    expect(() => decodeGuestMessage(Buffer.from('{not json'))).toThrow(/not JSON/)
    expect(() => decodeGuestMessage(Buffer.from('null'))).toThrow(/malformed control message: expected an object, got null/)
  })
})

describe('frame tracker', () => {
  it('knows, chunk by chunk, how much of the frame whose header is in is still to come', () => {
    const frames = [...sample(), encodeFrame(FrameType.Data, Buffer.alloc(5000, 1), StreamId.RunArchive)]
    const wire = Buffer.concat(frames)
    // Where each frame's payload starts and ends on the wire.
    const bodies: [number, number][] = []
    for (let at = 0, i = 0; i < frames.length; at += frames[i]!.length, i++) bodies.push([at + FRAME_HEADER_BYTES, at + frames[i]!.length])
    const expected = (pos: number) => {
      const b = bodies.find(([start, end]) => pos >= start && pos < end)
      return b ? b[1] - pos : 0
    }
    for (const chunk of [1, 7, 13, 4096]) {
      const t = new FrameTracker()
      for (let pos = 0; pos < wire.length; ) {
        const n = Math.min(chunk, wire.length - pos)
        t.feed(wire.subarray(pos, pos + n))
        pos += n
        expect(t.remaining, `after ${pos} bytes in chunks of ${chunk}`).toBe(expected(pos))
      }
      expect(t.remaining).toBe(0)
    }
  })

  it('expects nothing more once a header is corrupt (the decoder reports it)', () => {
    const good = encodeFrame(FrameType.Data, Buffer.alloc(100), StreamId.Stdin)
    const badMagic = Buffer.from(good)
    badMagic.writeUInt16BE(0x1234, 0)
    const tooLong = Buffer.from(good)
    tooLong.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 4)
    for (const bad of [badMagic, tooLong]) {
      const t = new FrameTracker()
      t.feed(bad.subarray(0, FRAME_HEADER_BYTES))
      expect(t.remaining).toBe(0)
      t.feed(good)
      expect(t.remaining).toBe(0)
    }
  })
})

describe('runArchiveChunks', () => {
  it('cuts an archive into 1 MiB pieces that join back into it; an empty one into none', () => {
    const archive = Buffer.from(Array.from({ length: (5 << 19) + 3 }, (_, i) => i % 251))
    const chunks = [...runArchiveChunks(archive)]
    expect(chunks.map((c) => c.length)).toEqual([1 << 20, 1 << 20, (1 << 19) + 3])
    expect(Buffer.concat(chunks).equals(archive)).toBe(true)
    expect([...runArchiveChunks(Buffer.alloc(0))]).toEqual([])
  })
})
