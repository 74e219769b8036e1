/**
 * `vitest --inspect` / `--inspect-brk` with the ktstr pool: Vitest's worker in the guest opens its
 * node inspector on the guest's loopback (GUEST_INSPECTOR_PORT), and this relay listens on the
 * host:port Vitest was given, carrying each TCP connection over the channel (runtime/protocol/relay.ts).
 * The DevTools protocol is HTTP (/json/list) then a WebSocket, so bytes are enough: node builds the
 * URLs in /json/list from the request's Host header, which names the host side.
 */
import net from 'node:net'
import { GUEST_INSPECTOR_PORT, type HostEndpoint, MAX_RELAY_ID, parseGuestRelay, relayClose, relayData, relayOpen } from '../runtime/protocol/index.js'
import { KtstrError } from '../src/util/errors.js'

/** Vitest's resolved inspector options (its `inspector`, set by --inspect/--inspect-brk or the config). */
export interface InspectorConfig {
  inspector?: { enabled?: boolean; host?: string; port?: number; waitForDebugger?: boolean }
  inspectBrk?: unknown
}

export interface InspectorSetting {
  host: string
  port: number
  /** The flag the user gave, to name in messages. */
  flag: '--inspect' | '--inspect-brk'
}

export const DEFAULT_INSPECTOR_HOST = '127.0.0.1'
export const DEFAULT_INSPECTOR_PORT = 9229

/** What Vitest's options ask for, or undefined when the inspector is off. */
export function inspectorSetting(config: InspectorConfig): InspectorSetting | undefined {
  const i = config.inspector
  if (!i?.enabled) return undefined
  const flag = config.inspectBrk || i.waitForDebugger ? '--inspect-brk' : '--inspect'
  return { host: i.host || DEFAULT_INSPECTOR_HOST, port: i.port || DEFAULT_INSPECTOR_PORT, flag }
}

/** The config Vitest's worker gets in the guest: its inspector listens on the guest's loopback. */
export function guestInspectorConfig<C extends InspectorConfig>(config: C): C {
  if (!config.inspector?.enabled) return config
  return { ...config, inspector: { ...config.inspector, host: '127.0.0.1', port: GUEST_INSPECTOR_PORT } }
}

interface Conn {
  socket: net.Socket
  /** The guest closed its end; the id is free again. */
  guestClosed: boolean
}

export class InspectorRelay {
  /** Connections opened in the guest, by id, until the guest says it closed them. */
  private readonly conns = new Map<number, Conn>()
  /** Accepted before the guest was up; opened once it is. */
  private readonly waiting = new Set<net.Socket>()
  private channel: HostEndpoint | undefined
  private lastId = 0
  private closed = false

  private constructor(private readonly server: net.Server) {
    server.on('connection', (socket) => this.accept(socket))
    server.on('error', () => {}) // after listening, only accept errors: that connection is lost
  }

  /** Listen where Vitest was told to; a port that is taken fails with one line naming the fix. */
  static async listen(setting: InspectorSetting): Promise<InspectorRelay> {
    const server = net.createServer({ pauseOnConnect: true })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(setting.port, setting.host, () => {
        server.off('error', reject)
        resolve()
      })
    }).catch((e: NodeJS.ErrnoException) => {
      throw listenError(e, setting)
    })
    return new InspectorRelay(server)
  }

  /** The guest serves relays (its Vitest worker is up): open connections over this channel, those already accepted first. */
  attach(channel: HostEndpoint): void {
    if (this.closed) return
    this.channel = channel
    // A malformed relay frame throws MalformedMessage here, which fails the channel like any other.
    channel.on('relay', this.onRelay)
    for (const socket of this.waiting) this.open(socket)
    this.waiting.clear()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.server.close()
    this.channel?.off('relay', this.onRelay)
    for (const s of this.waiting) s.destroy()
    for (const c of this.conns.values()) c.socket.destroy()
    this.waiting.clear()
    this.conns.clear()
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => {}) // 'close' follows
    if (this.closed) return void socket.destroy()
    if (this.channel) return this.open(socket)
    this.waiting.add(socket)
    socket.once('close', () => this.waiting.delete(socket))
  }

  private open(socket: net.Socket): void {
    const channel = this.channel!
    const id = this.freeId()
    if (id === undefined) return void socket.destroy()
    const conn: Conn = { socket, guestClosed: false }
    this.conns.set(id, conn)
    channel.sendRelay(id, relayOpen(GUEST_INSPECTOR_PORT))
    socket.on('data', (chunk: Buffer) => channel.sendRelay(id, relayData(chunk)))
    socket.on('close', () => {
      if (!conn.guestClosed && !this.closed) channel.sendRelay(id, relayClose())
    })
    socket.resume()
  }

  private readonly onRelay = (id: number, payload: Buffer): void => {
    const conn = this.conns.get(id)
    const msg = parseGuestRelay(id, payload, conn !== undefined)
    if (msg.op === 'data') conn!.socket.write(msg.bytes)
    else {
      conn!.guestClosed = true
      this.conns.delete(id)
      conn!.socket.end()
    }
  }

  private freeId(): number | undefined {
    for (let n = 0; n < MAX_RELAY_ID; n++) {
      const id = ((this.lastId + n) % MAX_RELAY_ID) + 1
      if (!this.conns.has(id)) return (this.lastId = id)
    }
    return undefined
  }
}

function listenError(e: NodeJS.ErrnoException, { host, port, flag }: InspectorSetting): KtstrError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
  switch (e.code) {
    case 'EADDRINUSE':
      return new KtstrError(`inspector port ${where} is in use; pass ${flag}=<port> or free it`)
    case 'EACCES':
      return new KtstrError(`cannot listen on ${where} for the inspector (permission denied); pass ${flag}=<port> with a port above 1023`)
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new KtstrError(`cannot listen on ${where} for the inspector: ${host} is not an address of this machine; pass ${flag}=127.0.0.1:${port}`)
    default:
      return new KtstrError(`cannot listen on ${where} for the inspector (${e.code ?? e.message}); pass ${flag}=<port>`)
  }
}
