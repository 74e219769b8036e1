/**
 * A minimal QMP client (QEMU Machine Protocol, docs/interop/qmp-spec): one JSON object per line on
 * a unix socket. After the greeting, `qmp_capabilities` leaves negotiation mode; each command
 * gets exactly one `return` or `error`, answered in order; `event` lines come in between.
 */
import net from 'node:net'

export class QmpError extends Error {
  override readonly name = 'QmpError'
}

interface Pending {
  resolve(value: unknown): void
  reject(err: Error): void
}

export class Qmp {
  private readonly pending: Pending[] = []
  private buf = ''
  private closed: Error | undefined
  private readonly eventListeners = new Set<(event: string, data: unknown) => void>()

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8')
    sock.on('data', (s: string) => this.onData(s))
    const gone = (why: string) => {
      this.closed ??= new QmpError(why)
      for (const p of this.pending.splice(0)) p.reject(this.closed)
    }
    // A QEMU that quits may reset the connection rather than close it: the same for the caller.
    sock.on('error', (e: NodeJS.ErrnoException) => gone(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? `QEMU closed its QMP socket (${e.code})` : `QMP socket: ${e.message}`))
    sock.on('close', () => gone('QEMU closed its QMP socket'))
  }

  /** Connect, read the greeting and leave capabilities negotiation. */
  static async connect(socketPath: string): Promise<Qmp> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath, () => resolve(s))
      s.once('error', reject)
    })
    const qmp = new Qmp(sock)
    // The greeting takes the first answer slot: it comes before any command is answered.
    await new Promise<unknown>((resolve, reject) => qmp.pending.push({ resolve, reject }))
    await qmp.execute('qmp_capabilities')
    return qmp
  }

  /** Run a command; resolves with its `return`, rejects with its `error.desc`. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed)
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject })
      this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`)
    })
  }

  onEvent(listener: (event: string, data: unknown) => void): () => void {
    this.eventListeners.add(listener)
    return () => this.eventListeners.delete(listener)
  }

  close(): void {
    this.sock.destroy()
  }

  private onData(s: string): void {
    this.buf += s
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim()
      this.buf = this.buf.slice(nl + 1)
      if (line) this.onLine(line)
    }
  }

  private onLine(line: string): void {
    let msg: { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string; data?: unknown }
    try {
      msg = JSON.parse(line)
    } catch {
      return
    }
    if (typeof msg.event === 'string') {
      for (const l of this.eventListeners) l(msg.event, msg.data)
      return
    }
    const p = this.pending.shift()
    if (!p) return
    if (msg.error) p.reject(new QmpError(msg.error.desc ?? 'QMP error'))
    else p.resolve(msg.QMP ?? msg.return)
  }
}
