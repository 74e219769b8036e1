/**
 * How a pool worker's messages travel to and from the guest's Vitest worker: v8-serialized Vitest
 * frames on the guest channel (pool-worker.ts sends them), each frame from the guest checked before
 * anything here or in Vitest reads it (the guest is not trusted).
 */
import { on } from 'node:events'
import v8 from 'node:v8'
import type { Vitest, WorkerRequest, WorkerResponse } from 'vitest/node'
import { type HostFsRequest, parseHostFsRequest, parseMonitorRequest, parseVitestFrame } from '../runtime/protocol/guest-schema.js'
import { type GuestMessage, MalformedMessage, StreamId } from '../runtime/protocol/index.js'
import type { MonitorRequest } from '../runtime/protocol/monitor.js'
import { ENVELOPE_MARK, isEnvelope } from '../runtime/protocol/vitest-envelope.js'
import type { GuestSession } from '../src/vm/session.js'

/** birpc's messages between PoolRunner and the guest's test runner: a call ('q') or its answer ('s'). */
export type RpcMessage = { t: 'q'; i?: string; m: string; a: unknown[] } | { t: 's'; i: string }
export type FromVitest = WorkerRequest | RpcMessage
export type FromGuest = WorkerResponse | RpcMessage

/** A frame from the guest: a checked Vitest message, a snapshot bridge or monitor API request, or why it was refused. */
export function decodeGuestFrame(payload: Buffer): { vitest: FromGuest } | { hostFs: HostFsRequest } | { monitor: MonitorRequest } | { refused: string } {
  let value: unknown
  try {
    value = v8.deserialize(payload)
  } catch (e) {
    return { refused: `cannot decode a message from the guest (${(e as Error).message}); are host and guest node versions the same?` }
  }
  try {
    if (!isEnvelope(value)) return { vitest: parseVitestFrame(value) as FromGuest }
    return value[ENVELOPE_MARK] === 'monitor' ? { monitor: parseMonitorRequest(value) } : { hostFs: parseHostFsRequest(value) }
  } catch (e) {
    if (e instanceof MalformedMessage) return { refused: e.message }
    throw e
  }
}

/** The guest's stdout and stderr (raw writes of its tests) go to Vitest's logger. */
export function pipeGuestOutput(session: GuestSession, { outputStream, errorStream }: Vitest['logger']): void {
  session.channel.on('data', (stream, chunk) => {
    if (chunk.length === 0) return
    if (stream === StreamId.Stdout) outputStream.write(chunk)
    else if (stream === StreamId.Stderr) errorStream.write(chunk)
  })
}

/** Settles when the guest's init has its Vitest worker listening. */
export async function guestReady(session: GuestSession): Promise<void> {
  const messages = on(session.channel, 'control') as AsyncIterable<[GuestMessage]>
  for await (const [m] of messages) if (m.kind === 'phase' && m.phase === 'vitest-ready') return
}
