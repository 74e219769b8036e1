/**
 * The command's stdin, from the channel. The host may send it before the command exists (the
 * scheduler is still attaching): it is held from the moment the channel opens and handed over
 * once. Each chunk is acknowledged to the host when the command's stdin pipe has taken it (the
 * write's callback), which is what bounds the host's sending (protocol/stdin-flow.ts): this side
 * never holds more than the host's window.
 */
import type { Writable } from 'node:stream'
import type { GuestEndpoint } from '../protocol/index.js'
import { StreamId } from '../protocol/index.js'

export class StdinBuffer {
  private chunks: Buffer[] = []
  private ended = false
  private sink: Writable | undefined

  constructor(private readonly endpoint: GuestEndpoint) {
    endpoint.on('data', (stream, chunk) => {
      if (stream !== StreamId.Stdin || this.ended) return
      if (chunk.length === 0) this.ended = true
      else this.chunks.push(chunk)
      if (this.sink) this.deliver(this.sink)
    })
  }

  /** Bytes received and not yet taken by the command (held, or queued in its pipe's stream). */
  get pendingBytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0) + (this.sink?.writableLength ?? 0)
  }

  /** Write what was held, then everything that follows, to the command's stdin; end it at EOF. */
  pipeTo(sink: Writable): void {
    this.sink = sink
    // The command may exit without reading its input: the bytes are dropped, and still
    // acknowledged (the write callbacks run with an error) so the host is not left waiting.
    sink.on('error', () => {})
    this.deliver(sink)
  }

  private deliver(sink: Writable): void {
    for (const chunk of this.chunks.splice(0)) {
      sink.write(chunk, () => this.endpoint.sendControl({ kind: 'stdin-ack', bytes: chunk.length }))
    }
    if (this.ended && !sink.writableEnded) sink.end()
  }
}
