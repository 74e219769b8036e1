/**
 * Control messages on the channel (FrameType.Control, JSON). The one module both the host (src/)
 * and the guest (runtime/) import, so the two sides cannot drift apart.
 */

/** Milestones the guest reports, timed by guest uptime, for `ktstr exec --timing`. */
export type GuestPhase = 'init' | 'mounted' | 'scheduler-attached' | 'command-started' | 'vitest-ready'

export interface SchedulerExit {
  code: number | null
  signal: string | null
  /** The scheduler's own stdout+stderr (tail). */
  output: string
  /** sched_ext's exit reason from the kernel log or sysfs, when it ejected the scheduler. */
  reason?: string
}

/** guest → host */
export type GuestMessage =
  | { kind: 'hello'; uptimeMs: number; nodeVersion: string }
  | { kind: 'phase'; phase: GuestPhase; uptimeMs: number }
  | { kind: 'scheduler-failed'; scheduler: string; message: string; exit?: SchedulerExit }
  | { kind: 'scheduler-exited'; scheduler: string; exit: SchedulerExit }
  | { kind: 'exit'; code: number | null; signal: string | null; uptimeMs: number }
  | { kind: 'fatal'; message: string }

/** host → guest */
export type HostMessage =
  | { kind: 'signal'; signal: NodeJS.Signals }
  | { kind: 'resize'; cols: number; rows: number }
  | { kind: 'shutdown' }

export function encodeMessage(msg: GuestMessage | HostMessage): Buffer {
  return Buffer.from(JSON.stringify(msg), 'utf8')
}

const GUEST_KINDS = new Set(['hello', 'phase', 'scheduler-failed', 'scheduler-exited', 'exit', 'fatal'])
const HOST_KINDS = new Set(['signal', 'resize', 'shutdown'])

/** Parse a control payload from the guest; malformed data is an error, never a guess. */
export function decodeGuestMessage(payload: Uint8Array): GuestMessage {
  return decode(payload, GUEST_KINDS, 'guest') as GuestMessage
}

export function decodeHostMessage(payload: Uint8Array): HostMessage {
  return decode(payload, HOST_KINDS, 'host') as HostMessage
}

function decode(payload: Uint8Array, kinds: Set<string>, from: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch {
    throw new Error(`malformed control message from the ${from}: not JSON (${payload.length} bytes)`)
  }
  const kind = (value as { kind?: unknown } | null)?.kind
  if (typeof kind !== 'string' || !kinds.has(kind)) {
    throw new Error(`malformed control message from the ${from}: unknown kind ${JSON.stringify(kind)}`)
  }
  return value
}
