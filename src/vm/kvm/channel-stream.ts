/**
 * The host side of the virtio-console port as a Duplex, so the kvm backend hands the same kind of
 * byte stream to the session as QEMU's unix socket does.
 */
import { Duplex } from 'node:stream'

export class ChannelStream extends Duplex {
  private gone = false

  constructor(private readonly toGuest: (bytes: Uint8Array) => void) {
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
    if (!this.gone) this.toGuest(chunk)
    done()
  }

  /** The VM is gone: end the readable side. */
  vmGone(): void {
    this.gone = true
    this.push(null)
  }
}
