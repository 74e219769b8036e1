/**
 * Control messages on the channel (FrameType.Control, JSON). The one module both the host (src/)
 * and the guest (runtime/) import, so the two sides cannot drift apart.
 */

// guest → host messages are defined by their schema, which the host checks them against
// (guest-schema.ts, host only: the guest imports just these types).
export type { GuestMessage, GuestPhase, SchedulerExit } from './guest-schema.js'

import type { GuestMessage } from './guest-schema.js'

/**
 * host → guest. `start` goes to a guest restored from a template snapshot, after the per-run
 * archive (a gzip'd newc cpio in Data frames on StreamId.RunArchive): unpack it, set the wall
 * clock, mix `seed` (hex) into the kernel's random pool (every restore starts from the same pool),
 * run. `prime` may come first, to a guest restored ahead of its run (src/vm/warm/standby.ts), after
 * the archive of the run before it: set the clock and mix the seed as `start` does, keep those bytes
 * and rehearse a run's first steps with them, as the template did before its snapshot; when their
 * spec names a scheduler, unpack them and start it (attached ahead). A `start` with `primed` sends
 * no archive: the run's is the one kept (and its scheduler, if any, already attached).
 */
export type HostMessage =
  | { kind: 'signal'; signal: NodeJS.Signals }
  | { kind: 'resize'; cols: number; rows: number }
  | { kind: 'shutdown' }
  | { kind: 'start'; epochMs: number; seed: string; primed?: true }
  | { kind: 'prime'; epochMs: number; seed: string }

export function encodeMessage(msg: GuestMessage | HostMessage): Buffer {
  return Buffer.from(JSON.stringify(msg), 'utf8')
}

const HOST_KINDS = new Set(['signal', 'resize', 'shutdown', 'start', 'prime'])

/** Parse a control payload from the host (trusted: only the kind is checked). */
export function decodeHostMessage(payload: Uint8Array): HostMessage {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch {
    throw new Error(`malformed control message from the host: not JSON (${payload.length} bytes)`)
  }
  const kind = (value as { kind?: unknown } | null)?.kind
  if (typeof kind !== 'string' || !HOST_KINDS.has(kind)) {
    throw new Error(`malformed control message from the host: unknown kind ${JSON.stringify(kind)}`)
  }
  return value as HostMessage
}
