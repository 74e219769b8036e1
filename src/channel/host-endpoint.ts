import type { Duplex } from 'node:stream'
import { Endpoint, decodeGuestMessage, type GuestMessage, type HostMessage } from '../../runtime/protocol/index.js'

/** The host's end of the channel: receives GuestMessages, sends HostMessages. */
export type HostEndpoint = Endpoint<GuestMessage, HostMessage>

export function hostEndpoint(stream: Duplex): HostEndpoint {
  return new Endpoint<GuestMessage, HostMessage>(stream, decodeGuestMessage)
}
