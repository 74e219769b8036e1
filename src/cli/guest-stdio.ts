/**
 * Connect a guest's stdio streams to this process: guest stdout/stderr → ours, our stdin → the
 * guest (or an immediate EOF when stdin is a terminal and the mode is not interactive).
 */
import type { Readable } from 'node:stream'
import type { HostEndpoint } from '../../runtime/protocol/index.js'
import { type GuestMessage, STDIN_WINDOW_BYTES, StreamId } from '../../runtime/protocol/index.js'
import type { GuestSession } from '../vm/session.js'

export function attachStdio(session: GuestSession, opts: { forwardStdin: boolean }): () => void {
  const ch = session.channel
  ch.on('data', (stream, chunk) => {
    if (stream === StreamId.Stdout) process.stdout.write(chunk)
    else if (stream === StreamId.Stderr) process.stderr.write(chunk)
  })
  if (!opts.forwardStdin) {
    ch.sendData(StreamId.Stdin, Buffer.alloc(0))
    return () => {}
  }
  return forwardStdin(ch, process.stdin)
}

/**
 * `input` → the guest command's stdin, at most STDIN_WINDOW_BYTES ahead of what the command has
 * taken (runtime/protocol/stdin-flow.ts): reading pauses while the window is full and resumes as
 * the guest acknowledges. Returns the detach function.
 */
export function forwardStdin(ch: HostEndpoint, input: Readable): () => void {
  let unacked = 0
  const onData = (b: Buffer) => {
    if (b.length === 0) return
    ch.sendData(StreamId.Stdin, b)
    unacked += b.length
    if (unacked >= STDIN_WINDOW_BYTES) input.pause()
  }
  const onControl = (msg: GuestMessage) => {
    if (msg.kind !== 'stdin-ack') return
    unacked = Math.max(0, unacked - msg.bytes)
    if (unacked < STDIN_WINDOW_BYTES && input.isPaused()) input.resume()
  }
  const onEnd = () => ch.sendData(StreamId.Stdin, Buffer.alloc(0))
  input.on('data', onData)
  input.on('end', onEnd)
  ch.on('control', onControl)
  return () => {
    input.off('data', onData)
    input.off('end', onEnd)
    ch.off('control', onControl)
    input.pause()
  }
}
