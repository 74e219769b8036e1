/**
 * The host may send the command's stdin before the command exists (the scheduler is still
 * attaching): hold it from the moment the channel opens and hand it over once.
 */
import { StreamId } from '../protocol/index.js'
import type { GuestEndpoint } from './channel.js'

export class StdinBuffer {
  private chunks: Buffer[] = []
  private ended = false
  private sink: ((chunk: Buffer | null) => void) | undefined

  constructor(endpoint: GuestEndpoint) {
    endpoint.on('data', (stream, chunk) => {
      if (stream !== StreamId.Stdin) return
      const item = chunk.length === 0 ? null : chunk
      if (this.sink) this.sink(item)
      else if (item) this.chunks.push(item)
      else this.ended = true
    })
  }

  /** Deliver what was held, then everything that follows; `null` means end of input. */
  pipeTo(sink: (chunk: Buffer | null) => void): void {
    for (const c of this.chunks.splice(0)) sink(c)
    if (this.ended) sink(null)
    this.sink = sink
  }
}
