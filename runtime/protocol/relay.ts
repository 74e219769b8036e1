/**
 * TCP connections relayed over the channel (FrameType.Relay; the frame's stream byte is the
 * connection id, 1-255). The host accepts a connection and opens it in the guest, which connects to
 * a guest-local port; then bytes flow both ways until either side closes. Used for the guest's node
 * inspector (`vitest --inspect`), whose HTTP and WebSocket traffic is plain TCP.
 *
 * Payload: one op byte, then its body. Open (host → guest): u16 port, big-endian. Data: the bytes.
 * Close: nothing; either side, once, when its socket is gone. The host reuses an id only after the
 * guest's Close for it, so a late frame never reaches another connection.
 */
import { MalformedMessage } from './errors.js'

export const RelayOp = { Open: 0, Data: 1, Close: 2 } as const

/** Where the guest's Vitest worker listens for the inspector, whatever host:port Vitest was given. */
export const GUEST_INSPECTOR_PORT = 9229
/** Set (to "1") in the guest worker's environment when Vitest runs with the inspector. */
export const ENV_INSPECTOR = 'KTSTR_INSPECTOR'

export const MAX_RELAY_ID = 255

export function relayOpen(port: number): Buffer {
  const b = Buffer.alloc(3)
  b.writeUInt8(RelayOp.Open, 0)
  b.writeUInt16BE(port, 1)
  return b
}

export function relayData(bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(RelayOp.Data), bytes])
}

export const relayClose = (): Buffer => Buffer.of(RelayOp.Close)

/** A relay frame from the host (trusted). */
export type HostRelay = { op: 'open'; port: number } | { op: 'data'; bytes: Buffer } | { op: 'close' }

export function decodeHostRelay(payload: Buffer): HostRelay | undefined {
  switch (payload[0]) {
    case RelayOp.Open:
      return payload.length === 3 ? { op: 'open', port: payload.readUInt16BE(1) } : undefined
    case RelayOp.Data:
      return { op: 'data', bytes: payload.subarray(1) }
    case RelayOp.Close:
      return { op: 'close' }
    default:
      return undefined
  }
}

/** A relay frame from the guest: data or close, on a connection the host opened. */
export type GuestRelay = { op: 'data'; bytes: Buffer } | { op: 'close' }

/** Check a relay frame from the guest. `open` says whether the host has connection `id` open. Throws MalformedMessage. */
export function parseGuestRelay(id: number, payload: Buffer, open: boolean): GuestRelay {
  const bad = (detail: string) => new MalformedMessage('relay', `connection ${id}: ${detail}`)
  if (!open) throw bad('not a connection the host opened')
  if (payload.length === 0) throw bad('empty frame (expected an op byte)')
  if (payload[0] === RelayOp.Data) return { op: 'data', bytes: payload.subarray(1) }
  if (payload[0] === RelayOp.Close) {
    if (payload.length !== 1) throw bad(`close carries ${payload.length - 1} extra bytes`)
    return { op: 'close' }
  }
  throw bad(`op ${payload[0]} is not data (1) or close (2)`)
}
