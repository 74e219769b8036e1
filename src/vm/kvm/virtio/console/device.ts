/**
 * virtio-console (virtio 1.2 §5.3) with VIRTIO_CONSOLE_F_MULTIPORT and one port, port 0, named
 * (default "ktstr.0") so the guest finds it as /sys/class/virtio-ports/vport0p0/name. It is the
 * host↔guest channel, not a console: the UART is the console.
 *
 * Queues (§5.3.2): 0 port 0 receiveq (host→guest), 1 port 0 transmitq (guest→host), 2 control
 * receiveq, 3 control transmitq. The multiport handshake (§5.3.6.2, Linux virtio_console.c):
 *   driver DEVICE_READY  → device DEVICE_ADD(0)
 *   driver PORT_READY(0) → device PORT_OPEN(0, 1) (the host end is connected; until then guest
 *                          writes block and reads see end-of-file), PORT_NAME(0, name)
 *   driver PORT_OPEN(0, 1|0) when a guest process opens/closes /dev/vport0p0.
 * Linux drops data that arrives for a port nobody has open, so `send` holds host data until the
 * guest opened the port and has posted receive buffers.
 *
 * If the driver does not accept MULTIPORT, port 0 is a plain console (hvc0) on queues 0/1 and
 * there is no name.
 */
import { log } from '../../../../util/log.js'
import type { GuestRam } from '../../../memory/guest-memory.js'
import { featureBit, hasFeature, VIRTIO_F, type VirtioActivation, type VirtioDevice } from '../mmio.js'
import { type DescriptorChain, isWritable, SplitQueue, type SplitQueueState } from '../queue.js'

export const VIRTIO_ID_CONSOLE = 3
export const VIRTIO_CONSOLE_F = { SIZE: 0, MULTIPORT: 1, EMERG_WRITE: 2 } as const

/** Control message events (§5.3.6.2). */
export const CONSOLE_EVENT = {
  DEVICE_READY: 0,
  DEVICE_ADD: 1,
  DEVICE_REMOVE: 2,
  PORT_READY: 3,
  CONSOLE_PORT: 4,
  RESIZE: 5,
  PORT_OPEN: 6,
  PORT_NAME: 7,
} as const

export const CONSOLE_QUEUE = { RX: 0, TX: 1, CONTROL_RX: 2, CONTROL_TX: 3 } as const
/** struct virtio_console_control { le32 id; le16 event; le16 value; } */
export const CONTROL_SIZE = 8
/** struct virtio_console_config { le16 cols; le16 rows; le32 max_nr_ports; le32 emerg_wr; } */
export const CONSOLE_CONFIG_SIZE = 12
/** Host → guest bytes the device holds before a sender has to wait (see `send`). */
export const CONSOLE_PENDING_MAX = 256 * 1024

/** What the console holds beyond its transport (a snapshot's part); bytes are base64. */
export interface VirtioConsoleState {
  multiport: boolean
  guestOpen: boolean
  /** Each queue's ring positions; null for a queue not in use. */
  queues: (SplitQueueState | null)[]
  /** Control messages not yet delivered. */
  control: string[]
  /** Host bytes not yet delivered. */
  toGuest: string[]
}

export interface VirtioConsoleOptions {
  readonly ram: GuestRam
  /** Port 0's name, sent with PORT_NAME. */
  readonly portName?: string
  /** Bytes the guest wrote to the port. */
  readonly onData: (bytes: Uint8Array) => void
  /** A guest process opened (true) or closed (false) the port. */
  readonly onGuestOpen?: (open: boolean) => void
  readonly queueSize?: number
}

export class VirtioConsole implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_CONSOLE
  readonly features: bigint
  readonly queueMaxSizes: readonly number[]
  readonly configSize = CONSOLE_CONFIG_SIZE
  readonly portName: string

  private act: VirtioActivation | undefined
  private queues: (SplitQueue | undefined)[] = []
  private multiport = false
  private guestOpen = false
  private readonly toGuest: Uint8Array[] = []
  private pending = 0
  /** Senders told to wait until the held bytes fall below CONSOLE_PENDING_MAX. */
  private readonly waiting: (() => void)[] = []
  private readonly control: Uint8Array[] = []

  constructor(private readonly opts: VirtioConsoleOptions) {
    this.portName = opts.portName ?? 'ktstr.0'
    const size = opts.queueSize ?? 256
    this.queueMaxSizes = [size, size, 64, 64]
    this.features = featureBit(VIRTIO_CONSOLE_F.MULTIPORT) | featureBit(VIRTIO_F.EVENT_IDX)
  }

  /** A guest process has the port open (or, without MULTIPORT, the driver is up). */
  get guestConnected(): boolean {
    return this.guestOpen
  }

  /** Bytes held for the guest. */
  get pendingBytes(): number {
    return this.pending
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const cfg = new DataView(new ArrayBuffer(CONSOLE_CONFIG_SIZE))
    cfg.setUint32(4, 1, true) // max_nr_ports; cols/rows are meaningless without F_SIZE, emerg_wr reads 0
    return size === 1 ? cfg.getUint8(offset) : size === 2 ? cfg.getUint16(offset, true) : cfg.getUint32(offset, true)
  }

  writeConfig(): void {
    // emerg_wr is only valid with F_EMERG_WRITE, which we do not offer; nothing else is writable.
  }

  activate(a: VirtioActivation): void {
    this.multiport = hasFeature(a.features, VIRTIO_CONSOLE_F.MULTIPORT)
    const eventIdx = hasFeature(a.features, VIRTIO_F.EVENT_IDX)
    const used = this.multiport ? 4 : 2
    // SplitQueue validates each ready queue against guest RAM and throws: activation refused.
    this.queues = a.queues.map((q, i) => (i < used && q.ready ? new SplitQueue(this.opts.ram, q, eventIdx) : undefined))
    for (let i = 0; i < used; i++) if (!this.queues[i]) throw new Error(`virtio-console queue ${i} was not set up`)
    this.act = a
    if (!this.multiport) this.setGuestOpen(true)
  }

  saveState(): VirtioConsoleState {
    const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64')
    return {
      multiport: this.multiport,
      guestOpen: this.guestOpen,
      queues: this.queues.map((q) => q?.state ?? null),
      control: this.control.map(b64),
      toGuest: this.toGuest.map(b64),
    }
  }

  /** After the transport re-activated the device with the saved queues: their positions and what was held. */
  loadState(state: unknown): void {
    const s = state as VirtioConsoleState
    const act = this.act
    if (!act) throw new Error('virtio-console: a saved state for a device that is not activated')
    if (s.multiport !== this.multiport) throw new Error('virtio-console: the saved state disagrees with the negotiated MULTIPORT')
    const eventIdx = hasFeature(act.features, VIRTIO_F.EVENT_IDX)
    this.queues = this.queues.map((q, i) => (q ? new SplitQueue(this.opts.ram, act.queues[i]!, eventIdx, s.queues[i] ?? undefined) : undefined))
    const bytes = (b: string) => new Uint8Array(Buffer.from(b, 'base64'))
    this.control.splice(0, this.control.length, ...s.control.map(bytes))
    this.toGuest.splice(0, this.toGuest.length, ...s.toGuest.map(bytes))
    this.pending = this.toGuest.reduce((n, b) => n + b.length, 0)
    this.setGuestOpen(s.guestOpen)
  }

  reset(): void {
    this.act = undefined
    this.queues = []
    this.control.length = 0
    this.setGuestOpen(false)
  }

  queueNotify(queue: number): void {
    if (!this.act) return
    try {
      if (queue === CONSOLE_QUEUE.TX) this.drainTransmit()
      else if (queue === CONSOLE_QUEUE.CONTROL_TX) this.drainControl()
      else if (queue === CONSOLE_QUEUE.RX) this.flushToGuest()
      else if (queue === CONSOLE_QUEUE.CONTROL_RX) this.flushControl()
    } catch (e) {
      // A guest memory fault or a broken ring: stop and ask the driver to reset us.
      this.act.fail(e instanceof Error ? e.message : String(e))
      this.act = undefined
    }
  }

  /**
   * Host → guest bytes on port 0. Held until the guest has the port open and buffers posted.
   * `queued` runs once the device holds less than CONSOLE_PENDING_MAX, at once or when the guest
   * has taken enough: a sender that waits for it (ChannelStream) keeps the queue bounded.
   */
  send(data: Uint8Array, queued?: () => void): void {
    if (data.length > 0) {
      this.toGuest.push(data.slice())
      this.pending += data.length
      if (this.act) this.queueNotify(CONSOLE_QUEUE.RX)
    }
    if (queued) {
      if (this.pending < CONSOLE_PENDING_MAX) queued()
      else this.waiting.push(queued)
    }
  }

  private setGuestOpen(open: boolean): void {
    if (open === this.guestOpen) return
    this.guestOpen = open
    this.opts.onGuestOpen?.(open)
  }

  /** Pops every available chain of `queue`, re-enabling notifications before giving up. */
  private drain(queue: number, each: (chain: DescriptorChain) => number): void {
    const q = this.queues[queue]!
    let added = false
    do {
      q.disableNotification()
      for (let chain = q.popAvail(); chain; chain = q.popAvail()) {
        if (chain.malformed) log.debug(`virtio-console queue ${queue}: ${chain.malformed}`)
        q.addUsed(chain.head, chain.malformed ? 0 : each(chain))
        added = true
      }
    } while (q.enableNotification())
    this.finish(queue, q, added)
  }

  private finish(queue: number, q: SplitQueue, added: boolean): void {
    if (q.broken) throw new Error(`virtio-console queue ${queue}: ${q.broken}`)
    if (added && q.needsNotification()) this.act!.signalUsed(queue)
  }

  private readChain(chain: DescriptorChain): Uint8Array {
    const parts = chain.descriptors.filter((d) => !isWritable(d))
    const out = new Uint8Array(parts.reduce((n, d) => n + d.len, 0))
    let at = 0
    for (const d of parts) {
      this.opts.ram.read(d.addr, out.subarray(at, at + d.len))
      at += d.len
    }
    return out
  }

  private drainTransmit(): void {
    this.drain(CONSOLE_QUEUE.TX, (chain) => {
      const bytes = this.readChain(chain)
      if (bytes.length > 0) this.deliver(bytes)
      return 0
    })
  }

  /** The consumer's failure is not the device's: the queue keeps going (and the guest with it). */
  private deliver(bytes: Uint8Array): void {
    try {
      this.opts.onData(bytes)
    } catch (e) {
      log.warn(`virtio-console: the channel's reader failed: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  private drainControl(): void {
    if (!this.multiport) return
    this.drain(CONSOLE_QUEUE.CONTROL_TX, (chain) => {
      const msg = this.readChain(chain)
      if (msg.length < CONTROL_SIZE) log.debug(`virtio-console: short control message (${msg.length} bytes)`)
      else this.onControl(msg)
      return 0
    })
    this.flushControl()
  }

  private onControl(msg: Uint8Array): void {
    const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength)
    const id = dv.getUint32(0, true)
    const event = dv.getUint16(4, true)
    const value = dv.getUint16(6, true)
    switch (event) {
      case CONSOLE_EVENT.DEVICE_READY:
        if (value === 1) this.sendControl(0, CONSOLE_EVENT.DEVICE_ADD, 0)
        else log.debug('virtio-console: driver failed to initialize')
        break
      case CONSOLE_EVENT.PORT_READY:
        if (id !== 0) break
        if (value !== 1) {
          log.debug('virtio-console: driver failed to add port 0')
          break
        }
        // The host end is connected before the port has a name: the guest finds the port by its
        // name in sysfs, and Linux answers a read on a port whose host end is not (yet) connected
        // with end-of-file (virtio_console.c port_fops_read), which the init would take for the
        // host having gone. (QEMU sends the two the other way round; the window is small there.)
        this.sendControl(0, CONSOLE_EVENT.PORT_OPEN, 1)
        this.sendControl(0, CONSOLE_EVENT.PORT_NAME, 1, new TextEncoder().encode(this.portName))
        break
      case CONSOLE_EVENT.PORT_OPEN:
        if (id === 0) {
          this.setGuestOpen(value === 1)
          if (value === 1) this.flushToGuest()
        }
        break
      default:
        log.debug(`virtio-console: ignoring control event ${event} for port ${id}`)
    }
  }

  private sendControl(id: number, event: number, value: number, payload?: Uint8Array): void {
    const msg = new Uint8Array(CONTROL_SIZE + (payload?.length ?? 0))
    const dv = new DataView(msg.buffer)
    dv.setUint32(0, id, true)
    dv.setUint16(4, event, true)
    dv.setUint16(6, value, true)
    if (payload) msg.set(payload, CONTROL_SIZE)
    this.control.push(msg)
  }

  /** Control messages go one per buffer (the driver reads one per used element). */
  private flushControl(): void {
    if (!this.multiport || this.control.length === 0) return
    const q = this.queues[CONSOLE_QUEUE.CONTROL_RX]!
    let added = false
    while (this.control.length > 0) {
      const chain = q.popAvail()
      if (!chain) {
        if (q.enableNotification()) continue
        break
      }
      if (chain.malformed) {
        log.debug(`virtio-console control receiveq: ${chain.malformed}`)
        q.addUsed(chain.head, 0)
      } else {
        q.addUsed(chain.head, this.fillAt(chain, 0, this.control.shift()!))
      }
      added = true
    }
    this.finish(CONSOLE_QUEUE.CONTROL_RX, q, added)
  }

  private flushToGuest(): void {
    if (!this.guestOpen || this.toGuest.length === 0) return
    const q = this.queues[CONSOLE_QUEUE.RX]!
    let added = false
    while (this.toGuest.length > 0) {
      const chain = q.popAvail()
      if (!chain) {
        // Out of buffers with data left: ask for a kick when the guest posts more. With EVENT_IDX
        // the driver kicks only when its avail idx passes our avail_event (§2.7.10); left stale,
        // a guest that reposts its buffers never kicks again and held host data waits forever.
        if (q.enableNotification()) continue
        break
      }
      let written = 0
      if (chain.malformed) log.debug(`virtio-console receiveq: ${chain.malformed}`)
      else {
        // Pack as much pending data into this buffer as fits.
        while (this.toGuest.length > 0) {
          const head = this.toGuest[0]!
          const room = chain.descriptors.filter(isWritable).reduce((n, d) => n + d.len, 0) - written
          if (room <= 0) break
          const n = this.fillAt(chain, written, head.subarray(0, room))
          written += n
          this.pending -= n
          if (n === head.length) this.toGuest.shift()
          else this.toGuest[0] = head.subarray(n)
        }
      }
      q.addUsed(chain.head, written)
      added = true
    }
    this.finish(CONSOLE_QUEUE.RX, q, added)
    while (this.pending < CONSOLE_PENDING_MAX && this.waiting.length > 0) {
      // A sender's continuation (the stream's next write, its callbacks) is not the device's to fail.
      try {
        this.waiting.shift()!()
      } catch (e) {
        log.warn(`virtio-console: a sender failed: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
  }

  /** Writes `data` into the chain's writable buffers, `skip` bytes in; returns the bytes written. */
  private fillAt(chain: DescriptorChain, skip: number, data: Uint8Array): number {
    let pos = 0 // offset in the chain's writable space
    let done = 0
    for (const d of chain.descriptors) {
      if (!isWritable(d)) continue
      const start = Math.max(skip - pos, 0)
      if (start < d.len && done < data.length) {
        const n = Math.min(d.len - start, data.length - done)
        this.opts.ram.write(d.addr + start, data.subarray(done, done + n))
        done += n
      }
      pos += d.len
    }
    return done
  }
}
