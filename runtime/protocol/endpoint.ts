/**
 * One end of the channel over any byte stream (a unix socket on the host, the virtio-serial
 * device in the guest, a socketpair in tests). Typed by which messages it sends and receives.
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { encodeFrame, type Frame, FrameDecoder, FrameType } from './frame.js'
import type { GuestMessage, HostMessage } from './messages.js'

export interface EndpointEvents<In> {
  control: [msg: In]
  data: [stream: number, chunk: Buffer]
  vitest: [payload: Buffer]
  /** A relayed connection's frame (relay.ts): its id and the payload, unchecked. */
  relay: [id: number, payload: Buffer]
  /** Framing or decoding failed (or a listener threw); the endpoint ignores further input. Emitted at most once. */
  corrupt: [err: Error]
  close: []
}

/**
 * The host's end receives GuestMessages, each checked against its schema (the host builds it with
 * guest-schema.ts's decodeGuestMessage: a malformed message is a MalformedMessage on `corrupt`).
 */
export type HostEndpoint = Endpoint<GuestMessage, HostMessage>
export type GuestEndpoint = Endpoint<HostMessage, GuestMessage>

export class Endpoint<In, Out> extends EventEmitter<EndpointEvents<In>> {
  private readonly decoder = new FrameDecoder()
  private broken = false
  private closed = false
  private held: Frame[] | undefined

  constructor(
    private readonly stream: Duplex,
    private readonly decodeControl: (payload: Uint8Array) => In,
  ) {
    super()
    stream.on('data', (chunk: Buffer) => this.onBytes(chunk))
    stream.on('error', (err) => this.fail(err))
    stream.on('close', () => this.onClose())
    stream.on('end', () => this.onClose())
  }

  sendControl(msg: Out): boolean {
    return this.write(encodeFrame(FrameType.Control, Buffer.from(JSON.stringify(msg), 'utf8')))
  }

  sendData(stream: number, chunk: Uint8Array): boolean {
    return this.write(encodeFrame(FrameType.Data, chunk, stream))
  }

  sendVitest(payload: Uint8Array): boolean {
    return this.write(encodeFrame(FrameType.Vitest, payload))
  }

  sendRelay(id: number, payload: Uint8Array): boolean {
    return this.write(encodeFrame(FrameType.Relay, payload, id))
  }

  /**
   * Hold incoming frames (they are kept, in order) until resume(): lets a new owner attach its
   * listeners without losing frames that arrived in the same read as the one it reacted to.
   */
  hold(): void {
    this.held ??= []
  }

  resume(): void {
    const frames = this.held ?? []
    this.held = undefined
    for (let i = 0; i < frames.length; i++) {
      this.deliver(frames[i]!)
      // A listener held again while we replayed: the rest wait for the next resume().
      const again = this.held as Frame[] | undefined
      if (again) {
        again.unshift(...frames.slice(i + 1))
        return
      }
    }
  }

  get isOpen(): boolean {
    return !this.closed && !this.broken
  }

  /** Resolves once everything written so far has been handed to the OS. */
  flush(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || this.stream.writableLength === 0) return resolve()
      this.stream.write(Buffer.alloc(0), () => resolve())
    })
  }

  end(): void {
    this.stream.end()
  }

  private write(frame: Buffer): boolean {
    if (this.closed || this.stream.destroyed) return false
    return this.stream.write(frame)
  }

  private onBytes(chunk: Buffer): void {
    if (this.broken) return
    // The frames before a corruption are delivered first (the guest's last output explains it).
    const { frames, error } = this.decoder.decode(chunk)
    for (const f of frames) {
      if (this.broken) return
      if (this.held) this.held.push(f)
      else this.deliver(f)
    }
    if (error) this.fail(error)
  }

  private deliver(f: Frame): void {
    if (this.broken) return
    try {
      this.dispatch(f)
    } catch (e) {
      // A listener threw: that must not escape into the stream's 'data' handler (it would crash the
      // process, or kill the kvm console device); the endpoint fails instead, like on bad input.
      this.fail(e instanceof Error ? e : new Error(String(e)))
    }
  }

  private dispatch(f: Frame): void {
    switch (f.type) {
      case FrameType.Control: {
        let msg: In
        try {
          msg = this.decodeControl(f.payload)
        } catch (e) {
          return this.fail(e as Error)
        }
        this.emit('control', msg)
        break
      }
      case FrameType.Data:
        this.emit('data', f.stream, f.payload)
        break
      case FrameType.Vitest:
        this.emit('vitest', f.payload)
        break
      case FrameType.Relay:
        this.emit('relay', f.stream, f.payload)
        break
    }
  }

  private fail(err: Error): void {
    if (this.broken || this.closed) return
    this.broken = true
    this.emit('corrupt', err)
  }

  private onClose(): void {
    if (this.closed) return
    this.closed = true
    this.emit('close')
  }
}
