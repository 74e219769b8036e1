/**
 * The guest end of relayed connections (protocol/relay.ts): each one the host opens becomes a TCP
 * connection to 127.0.0.1:<port> here. A port nobody listens on yet (the inspector opens when
 * Vitest's worker starts a file) is retried until it answers or the host closes the connection.
 */
import net from 'node:net'
import { decodeHostRelay, type GuestEndpoint, relayClose, relayData } from '../protocol/index.js'

const RETRY_MS = 100

interface Conn {
  socket?: net.Socket
  /** Bytes from the host before the socket connected. */
  queued: Buffer[]
  closedByHost: boolean
  timer?: NodeJS.Timeout
}

/** Serve the host's relay frames on this endpoint; returns a function that drops every connection. */
export function serveRelay(endpoint: GuestEndpoint): () => void {
  const conns = new Map<number, Conn>()

  const gone = (id: number, conn: Conn) => {
    if (conns.get(id) !== conn) return
    conns.delete(id)
    clearTimeout(conn.timer)
    endpoint.sendRelay(id, relayClose())
  }

  const connect = (id: number, conn: Conn, port: number) => {
    if (conn.closedByHost) return gone(id, conn)
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      conn.socket = socket
      for (const b of conn.queued) socket.write(b)
      conn.queued = []
      if (conn.closedByHost) socket.end()
    })
    socket.on('data', (chunk: Buffer) => endpoint.sendRelay(id, relayData(chunk)))
    socket.on('error', () => {}) // 'close' follows
    socket.on('close', () => {
      if (conn.socket === socket) return gone(id, conn)
      // Never connected: not listening yet, so try again.
      conn.timer = setTimeout(() => connect(id, conn, port), RETRY_MS)
    })
  }

  const onRelay = (id: number, payload: Buffer) => {
    const msg = decodeHostRelay(payload)
    const conn = conns.get(id)
    if (msg?.op === 'open') {
      if (conn) return // the host waits for our close before reusing an id
      const fresh: Conn = { queued: [], closedByHost: false }
      conns.set(id, fresh)
      connect(id, fresh, msg.port)
    } else if (msg?.op === 'data' && conn) {
      if (conn.socket) conn.socket.write(msg.bytes)
      else conn.queued.push(msg.bytes)
    } else if (msg?.op === 'close' && conn) {
      conn.closedByHost = true
      conn.socket?.end()
    }
  }
  endpoint.on('relay', onRelay)
  return () => {
    endpoint.off('relay', onRelay)
    for (const [id, conn] of conns) {
      conn.closedByHost = true
      conn.socket?.destroy()
      gone(id, conn)
    }
  }
}
