/**
 * A debugger's side of the DevTools protocol, as small as the inspector tests need: GET /json/list,
 * then a WebSocket (node:http upgrade and RFC 6455 framing; Node 20 has no WebSocket client without a
 * flag) carrying JSON commands and events.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type { Duplex } from 'node:stream'

export interface InspectorTarget {
  id: string
  url: string
  webSocketDebuggerUrl: string
  devtoolsFrontendUrl: string
}

/** GET http://host:port/path as JSON; a request unanswered for `timeoutMs` fails. */
export function getJson<T>(host: string, port: number, path: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as T)
        } catch (e) {
          reject(e)
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${host}:${port}: no answer in ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

/**
 * /json/list once something answers on host:port (the pool opens the port when the file's guest
 * starts). A request the port accepted waits up to the deadline: one made early must be answered.
 */
export async function waitForTargets(host: string, port: number, timeoutMs: number): Promise<InspectorTarget[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const list = await getJson<InspectorTarget[]>(host, port, '/json/list', Math.max(deadline - Date.now(), 1))
      if (list.length > 0) return list
    } catch (e) {
      if (Date.now() > deadline) throw e
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

type Message = { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { message: string } }

export class CdpClient extends EventEmitter<{ event: [Message]; close: [] }> {
  private seq = 0
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>()
  private buffered = Buffer.alloc(0)

  private constructor(private readonly socket: Duplex) {
    super()
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk))
    socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('the inspector closed the connection'))
      this.pending.clear()
      this.emit('close')
    })
  }

  static connect(wsUrl: string): Promise<CdpClient> {
    const url = new URL(wsUrl)
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
      })
      req.on('upgrade', (_res, socket, head) => {
        const client = new CdpClient(socket)
        if (head.length > 0) client.onBytes(head)
        resolve(client)
      })
      req.on('response', (res) => reject(new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`)))
      req.on('error', reject)
      req.end()
    })
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.seq
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.socket.write(maskedTextFrame(JSON.stringify({ id, method, params })))
    })
  }

  /** The next event named `method` (optionally one that `accept` takes). */
  next(method: string, timeoutMs: number, accept: (params: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('event', on)
        reject(new Error(`no ${method} within ${timeoutMs} ms`))
      }, timeoutMs)
      const on = (m: Message) => {
        if (m.method !== method || !accept(m.params ?? {})) return
        clearTimeout(timer)
        this.off('event', on)
        resolve(m.params ?? {})
      }
      this.on('event', on)
    })
  }

  close(): void {
    this.socket.end()
  }

  private onBytes(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk])
    for (;;) {
      const frame = unmaskedFrame(this.buffered)
      if (!frame) return
      this.buffered = this.buffered.subarray(frame.size)
      if (frame.opcode === 0x8) return void this.socket.end() // close
      if (frame.opcode !== 0x1) continue // the inspector sends whole text frames
      const msg = JSON.parse(frame.payload.toString('utf8')) as Message
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id)!
        this.pending.delete(msg.id)
        if (msg.error) p.reject(new Error(msg.error.message))
        else p.resolve(msg.result ?? {})
      } else this.emit('event', msg)
    }
  }
}

/** A client's text frame: FIN, masked (RFC 6455 5.3). */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8')
  const n = payload.length
  const head = n < 126 ? Buffer.of(0x81, 0x80 | n) : n < 65536 ? Buffer.of(0x81, 0x80 | 126, n >> 8, n & 0xff) : Buffer.concat([Buffer.of(0x81, 0x80 | 127), u64(n)])
  const mask = randomBytes(4)
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))
  return Buffer.concat([head, mask, body])
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

/** A server's frame (never masked) at the start of `buf`, if it is all there. */
function unmaskedFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined
  let len = buf[1]! & 0x7f
  let at = 2
  if (len === 126) {
    if (buf.length < 4) return undefined
    len = buf.readUInt16BE(2)
    at = 4
  } else if (len === 127) {
    if (buf.length < 10) return undefined
    len = Number(buf.readBigUInt64BE(2))
    at = 10
  }
  if (buf.length < at + len) return undefined
  return { opcode: buf[0]! & 0x0f, payload: buf.subarray(at, at + len), size: at + len }
}

/**
 * The first generated line (0-based) that a source map (v3, one source) maps to `line` (0-based) of
 * the file as written: where an editor puts a breakpoint set on that line.
 */
export function generatedLine(map: { mappings: string }, line: number): number | undefined {
  let srcLine = 0
  const lines = map.mappings.split(';')
  for (let gen = 0; gen < lines.length; gen++) {
    for (const segment of lines[gen]!.split(',')) {
      const f = vlq(segment)
      if (f.length < 4) continue
      srcLine += f[2]!
      if (srcLine === line) return gen
    }
  }
  return undefined
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** A segment's fields (base64 VLQ, sign in the lowest bit). */
function vlq(segment: string): number[] {
  const out: number[] = []
  let value = 0
  let shift = 0
  for (const c of segment) {
    const digit = B64.indexOf(c)
    value += (digit & 31) << shift
    if (digit & 32) shift += 5
    else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1)
      value = 0
      shift = 0
    }
  }
  return out
}
