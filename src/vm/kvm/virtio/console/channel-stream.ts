/**
 * The host side of the virtio-console port as a Duplex, so the kvm backend hands the same kind of
 * byte stream to the session as QEMU's unix socket does.
 */
import { Duplex } from 'node:stream'

export class ChannelStream extends Duplex {
  private gone = false
  private waiting: (() => void) | undefined

  /** `toGuest` calls `queued` once the device has room for more (VirtioConsole.send). */
  constructor(private readonly toGuest: (bytes: Uint8Array, queued: () => void) => void) {
    super()
  }

  /**
   * Bytes the guest wrote. Never throws: it runs inside the console device's queue handler, where
   * an exception from a reader (pushed data reaches 'data' listeners synchronously) would stop the
   * device. A reader's error ends this stream with that error instead.
   */
  fromGuest(bytes: Uint8Array): void {
    if (this.destroyed) return
    try {
      this.push(Buffer.from(bytes))
    } catch (e) {
      this.destroy(e instanceof Error ? e : new Error(String(e)))
    }
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    // After the VM is gone its RAM is unmapped: writes must not reach the device any more.
    if (this.gone) return done()
    // The next write waits until the guest has taken enough: further writes queue in this
    // stream, whose write() returns false, so a sender that heeds it holds off.
    this.waiting = done
    this.toGuest(chunk, () => {
      if (this.waiting !== done) return
      this.waiting = undefined
      done()
    })
  }

  /** The VM is gone: end the readable side; a write waiting for room completes (unsent). */
  vmGone(): void {
    this.gone = true
    const w = this.waiting
    this.waiting = undefined
    w?.()
    this.push(null)
  }
}
