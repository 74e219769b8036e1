import type { Duplex } from 'node:stream'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import { Endpoint, type GuestMessage, type HostMessage } from '../../runtime/protocol/index.js'

/**
 * The host's end of the channel: receives GuestMessages, each checked against its schema (a
 * malformed one is a MalformedMessage on the endpoint's `corrupt` event), sends HostMessages.
 */
export type HostEndpoint = Endpoint<GuestMessage, HostMessage>

export function hostEndpoint(stream: Duplex): HostEndpoint {
  return new Endpoint<GuestMessage, HostMessage>(stream, decodeGuestMessage)
}
