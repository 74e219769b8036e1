/**
 * ktstr's own messages inside Vitest frames (FrameType.Vitest), next to Vitest's worker messages and
 * birpc calls. Both sides tell them apart by the `__ktstr__` marker, which neither Vitest's worker
 * protocol (`__vitest_worker_request__`/`__vitest_worker_response__`) nor birpc (`t`) uses.
 * The guest's snapshot environment uses them to read and write snapshot files on the host.
 */

export const ENVELOPE_MARK = '__ktstr__'

// The guest's requests are defined by their schema, which the host checks them against
// (guest-schema.ts, host only: the guest imports just these types).
export type { HostFsOp, HostFsRequest } from './guest-schema.js'

import type { HostFsRequest } from './guest-schema.js'
import type { MonitorReply, MonitorRequest } from './monitor.js'

/** host → guest; `value` is the file's text for `read` (null when it does not exist). */
export type HostFsReply = { [ENVELOPE_MARK]: 'fs-reply'; id: number; ok: true; value: string | null } | { [ENVELOPE_MARK]: 'fs-reply'; id: number; ok: false; message: string }

/** The monitor/bpf API's requests and replies are envelopes too (monitor.ts). */
export type Envelope = HostFsRequest | HostFsReply | MonitorRequest | MonitorReply

export function isEnvelope(msg: unknown): msg is Envelope {
  return typeof msg === 'object' && msg !== null && typeof (msg as Record<string, unknown>)[ENVELOPE_MARK] === 'string'
}

/**
 * Where the guest worker publishes the host file bridge for runtime/vitest/snapshot-environment.ts, which
 * Vitest loads through its module runner and so cannot import from the worker directly.
 */
export const HOST_FS_KEY = Symbol.for('ktstr.hostfs')

export interface HostFsBridge {
  read(path: string): Promise<string | null>
  write(path: string, content: string): Promise<void>
  remove(path: string): Promise<void>
}

/** Environment variables the pool sets for the guest worker (removed from process.env once read). */
export const ENV_VITEST_DIST = 'KTSTR_VITEST_DIST'
export const ENV_EXEC_ARGV = 'KTSTR_VITEST_EXEC_ARGV'
