/**
 * Connect a guest's stdio streams to this process: guest stdout/stderr → ours, our stdin → the
 * guest (or an immediate EOF when stdin is a terminal and the mode is not interactive).
 */
import { StreamId } from '../../runtime/protocol/index.js'
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
  const onData = (b: Buffer) => {
    if (b.length > 0) ch.sendData(StreamId.Stdin, b)
  }
  const onEnd = () => ch.sendData(StreamId.Stdin, Buffer.alloc(0))
  process.stdin.on('data', onData)
  process.stdin.on('end', onEnd)
  return () => {
    process.stdin.off('data', onData)
    process.stdin.off('end', onEnd)
    process.stdin.pause()
  }
}

/** First Ctrl-C goes to the guest's command; a second one kills the VM. */
export function forwardInterrupts(session: GuestSession): () => void {
  let count = 0
  const onSignal = (sig: NodeJS.Signals) => {
    count++
    if (count === 1 && sig === 'SIGINT') session.channel.sendControl({ kind: 'signal', signal: 'SIGINT' })
    else session.kill()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
