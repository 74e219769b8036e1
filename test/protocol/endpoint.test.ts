import { afterEach, describe, expect, it } from 'vitest'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import { decodeHostMessage, Endpoint, encodeFrame, FrameType, type GuestMessage, type HostMessage, StreamId } from '../../runtime/protocol/index.js'
import { socketPair } from '../helpers/socket-pair.js'

const cleanups: (() => void)[] = []
afterEach(() => cleanups.splice(0).forEach((f) => f()))

describe('Endpoint over a socket pair', () => {
  it('carries control, data and vitest frames both ways, in order', async () => {
    const [a, b, done] = await socketPair()
    cleanups.push(done)
    const host = new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage)
    const guest = new Endpoint<HostMessage, GuestMessage>(b, decodeHostMessage)
    const got: unknown[] = []
    const all = new Promise<void>((resolve) => {
      host.on('control', (m) => got.push(['control', m]))
      host.on('data', (s, c) => got.push(['data', s, c.toString()]))
      host.on('vitest', (p) => {
        got.push(['vitest', p.length])
        resolve()
      })
    })
    guest.sendControl({ kind: 'hello', uptimeMs: 5, nodeVersion: 'v20' })
    guest.sendData(StreamId.Stdout, Buffer.from('a'))
    guest.sendData(StreamId.Stderr, Buffer.from('b'))
    guest.sendVitest(Buffer.alloc(300_000, 1))
    await all
    expect(got).toEqual([
      ['control', { kind: 'hello', uptimeMs: 5, nodeVersion: 'v20' }],
      ['data', StreamId.Stdout, 'a'],
      ['data', StreamId.Stderr, 'b'],
      ['vitest', 300_000],
    ])
    const back = new Promise<HostMessage>((r) => guest.on('control', r))
    host.sendControl({ kind: 'shutdown' })
    expect(await back).toEqual({ kind: 'shutdown' })
  })

  it('reports corruption once and ignores what follows', async () => {
    const [a, b, done] = await socketPair()
    cleanups.push(done)
    const host = new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage)
    const errors: Error[] = []
    const controls: unknown[] = []
    host.on('corrupt', (e) => errors.push(e))
    host.on('control', (m) => controls.push(m))
    b.write('garbage from a stray writer')
    b.write(encodeFrame(FrameType.Control, Buffer.from(JSON.stringify({ kind: 'fatal', message: 'x' }))))
    await new Promise((r) => setTimeout(r, 100))
    expect(errors).toHaveLength(1)
    expect(errors[0]!.message).toMatch(/channel corrupted/)
    expect(controls).toEqual([])
    expect(host.isOpen).toBe(false)
  })

  it('treats an unknown control kind as corruption, not as a message', async () => {
    const [a, b, done] = await socketPair()
    cleanups.push(done)
    const host = new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage)
    const err = new Promise<Error>((r) => host.on('corrupt', r))
    b.write(encodeFrame(FrameType.Control, Buffer.from(JSON.stringify({ kind: 'launch-missiles' }))))
    expect((await err).message).toMatch(/unknown kind "launch-missiles"/)
  })

  it('emits close when the other end goes away', async () => {
    const [a, b, done] = await socketPair()
    cleanups.push(done)
    const host = new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage)
    const closed = new Promise<void>((r) => host.on('close', r))
    b.destroy()
    await closed
    expect(host.sendControl({ kind: 'shutdown' })).toBe(false)
  })
})

describe('Endpoint hold/resume', () => {
  it('keeps frames that arrive while held and delivers them in order on resume', async () => {
    const [a, b, done] = await socketPair()
    cleanups.push(done)
    const host = new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage)
    const got: string[] = []
    host.on('control', (m) => {
      got.push(m.kind)
      if (m.kind === 'hello') host.hold() // as the session does: later frames wait for new listeners
    })
    // hello and the command's output in one write, as a fast guest sends them
    b.write(
      Buffer.concat([
        encodeFrame(FrameType.Control, Buffer.from(JSON.stringify({ kind: 'hello', uptimeMs: 1, nodeVersion: 'v20' }))),
        encodeFrame(FrameType.Data, Buffer.from('early output'), StreamId.Stderr),
        encodeFrame(FrameType.Control, Buffer.from(JSON.stringify({ kind: 'exit', code: 127, signal: null, uptimeMs: 2 }))),
      ]),
    )
    await new Promise((r) => setTimeout(r, 50))
    expect(got).toEqual(['hello'])
    host.on('data', (_s, c) => got.push(c.toString()))
    host.resume()
    expect(got).toEqual(['hello', 'early output', 'exit'])
  })
})

describe('Endpoint listeners', () => {
  it('a listener that throws fails the endpoint instead of throwing out of the socket handler', async () => {
    const [a, b, done] = await socketPair()
    cleanups.push(done)
    const host = new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage)
    host.on('data', () => {
      throw new TypeError('a host bug')
    })
    const corrupt = new Promise<Error>((r) => host.on('corrupt', r))
    b.write(encodeFrame(FrameType.Data, Buffer.from('x'), StreamId.Stdout))
    expect((await corrupt).message).toBe('a host bug')
    expect(host.isOpen).toBe(false)
  })
})
