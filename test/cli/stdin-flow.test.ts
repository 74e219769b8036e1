/**
 * Stdin flow control between the host's forwarder (src/cli/guest-stdio.ts) and the guest's
 * StdinBuffer (runtime/init/stdin-buffer.ts), over a real socket pair: each side holds at most the
 * window, however much input comes and however slowly the command takes it, and control messages
 * still get through while stdin is blocked. The command's pipe is a Writable that takes a chunk
 * only when the test lets it (a full pipe); the real-guest version is stdin-real.test.ts.
 */
import { Readable, Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { StdinBuffer } from '../../runtime/init/stdin-buffer.js'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import { decodeHostMessage, Endpoint, type GuestMessage, type HostMessage, STDIN_WINDOW_BYTES } from '../../runtime/protocol/index.js'
import { forwardStdin } from '../../src/cli/guest-stdio.js'
import { socketPair } from '../helpers/socket-pair.js'

const CHUNK = 64 * 1024
const TOTAL = 32 * 1024 * 1024

/** The host's and the guest's channel ends over a real socket pair. */
async function channel() {
  const [a, b, close] = await socketPair()
  cleanups.push(close)
  return { host: new Endpoint<GuestMessage, HostMessage>(a, decodeGuestMessage), guest: new Endpoint<HostMessage, GuestMessage>(b, decodeHostMessage) }
}

/** Lets the event loop (and the socket) run until `cond` holds, or fails after many rounds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1))
  if (!cond()) throw new Error(`never: ${what}`)
}
const settle = () => new Promise((r) => setTimeout(r, 50))

const cleanups: (() => void)[] = []
afterEach(() => cleanups.splice(0).forEach((f) => f()))

describe('stdin flow control (host forwarder ↔ guest buffer)', () => {
  it('holds at most a window on each side; every byte arrives in order; Ctrl-C passes a blocked stdin', async () => {
    const { host, guest } = await channel()

    let produced = 0
    const input = new Readable({
      read() {
        if (produced >= TOTAL) return void this.push(null)
        this.push(Buffer.alloc(CHUNK, (produced / CHUNK) & 0xff))
        produced += CHUNK
      },
    })
    const detach = forwardStdin(host, input)
    cleanups.push(detach)
    const stdin = new StdinBuffer(guest)

    // No command yet (its scheduler is attaching): the guest holds one window, the host stops reading.
    await until(() => stdin.pendingBytes >= STDIN_WINDOW_BYTES, 'a window reached the guest')
    await settle()
    expect(stdin.pendingBytes).toBeLessThan(STDIN_WINDOW_BYTES + CHUNK)
    expect(produced).toBeLessThan(STDIN_WINDOW_BYTES + 4 * CHUNK)

    // The command's pipe takes nothing: still one window in the guest, none more read on the host.
    const got: Buffer[] = []
    const held: (() => void)[] = []
    let ended = false
    const pipe = new Writable({
      highWaterMark: CHUNK,
      write(chunk: Buffer, _enc, cb) {
        got.push(chunk)
        held.push(cb)
      },
      final(cb) {
        ended = true
        cb()
      },
    })
    stdin.pipeTo(pipe)
    await settle()
    expect(stdin.pendingBytes).toBeLessThan(STDIN_WINDOW_BYTES + CHUNK)
    expect(produced).toBeLessThan(STDIN_WINDOW_BYTES + 4 * CHUNK)

    // Ctrl-C while stdin is blocked: control frames are not stuck behind it.
    const signalled = new Promise<HostMessage>((resolve) => guest.once('control', resolve))
    host.sendControl({ kind: 'signal', signal: 'SIGINT' })
    expect(await signalled).toEqual({ kind: 'signal', signal: 'SIGINT' })

    // The command reads: all of it arrives, in order, and neither side ever held more than a window.
    let maxPending = 0
    while (!ended) {
      held.splice(0).forEach((cb) => cb())
      maxPending = Math.max(maxPending, stdin.pendingBytes)
      await new Promise((r) => setTimeout(r, 1))
    }
    const all = Buffer.concat(got)
    expect(all.length).toBe(TOTAL)
    for (let off = 0; off < TOTAL; off += CHUNK) expect(all[off]).toBe((off / CHUNK) & 0xff)
    expect(maxPending).toBeLessThan(STDIN_WINDOW_BYTES + CHUNK)
  })

  it('a command that exits without reading: its input is dropped and acknowledged, the host reads on to EOF', async () => {
    const { host, guest } = await channel()
    const input = Readable.from(
      (function* () {
        for (let i = 0; i < 64; i++) yield Buffer.alloc(CHUNK)
      })(),
    )
    cleanups.push(forwardStdin(host, input))
    const stdin = new StdinBuffer(guest)
    const gone = new Writable({ write: (_c, _e, cb) => cb() })
    gone.destroy() // the pipe of a command that already exited
    stdin.pipeTo(gone)
    await until(() => input.readableEnded, 'the host read its whole input')
  })
})
