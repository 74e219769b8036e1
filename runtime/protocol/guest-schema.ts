/**
 * What the host accepts from the guest, which it does not trust: a schema for every guest → host
 * message (control messages, the snapshot file bridge's requests, the outer shape of Vitest frames),
 * the types derived from them, and decoders that throw nothing but MalformedMessage.
 *
 * Host only: the guest imports these types (erased at compile time), never this module, so valibot
 * stays out of the guest image.
 */
import * as v from 'valibot'
import { MalformedMessage } from './errors.js'
import { MAX_FRAME_PAYLOAD } from './frame.js'
import type { MonitorRequest } from './monitor.js'
import { ENVELOPE_MARK } from './vitest-envelope.js'

const text = (max: number) => v.pipe(v.string(), v.maxLength(max))
/** A short string: names, versions. */
const name = text(256)
/** A path or a scheduler name (which may be a path). */
const pathText = text(4096)
/** Human-readable text: messages, a scheduler's output tail (the guest keeps 16 KiB of it). */
const prose = text(1024 * 1024)
const uptimeMs = v.pipe(v.number(), v.integer(), v.minValue(0))
const exitCode = v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(255)))
const signalName = v.nullable(v.pipe(v.string(), v.regex(/^SIG[A-Z0-9+-]{1,12}$/)))

const GuestPhaseSchema = v.picklist(['init', 'mounted', 'scheduler-attached', 'command-started', 'vitest-ready'])

const SchedulerExitSchema = v.object({
  code: exitCode,
  signal: signalName,
  /** The scheduler's own stdout+stderr (tail). */
  output: prose,
  /** sched_ext's exit reason from the kernel log or sysfs, when it ejected the scheduler. */
  reason: v.optional(prose),
})

export const GuestMessageSchema = v.variant('kind', [
  v.object({ kind: v.literal('hello'), uptimeMs, nodeVersion: name }),
  // A template guest (booted without a run spec) is up and waits for one: the host snapshots it now.
  v.object({ kind: v.literal('template-ready'), uptimeMs }),
  // `ahead`: a scheduler-attached that came before the run (a watch-mode standby attached it while
  // it waited for the save: runtime/init/template.ts).
  v.object({ kind: v.literal('phase'), phase: GuestPhaseSchema, uptimeMs, ahead: v.optional(v.literal(true)) }),
  v.object({ kind: v.literal('scheduler-failed'), scheduler: pathText, message: prose, exit: v.optional(SchedulerExitSchema) }),
  v.object({ kind: v.literal('scheduler-exited'), scheduler: pathText, exit: SchedulerExitSchema }),
  v.object({ kind: v.literal('exit'), code: exitCode, signal: signalName, uptimeMs }),
  v.object({ kind: v.literal('fatal'), message: prose }),
  // The command's stdin took these bytes (stdin-flow.ts); one write's worth, at most a frame.
  v.object({ kind: v.literal('stdin-ack'), bytes: v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(MAX_FRAME_PAYLOAD)) }),
])

/** Milestones the guest reports, timed by guest uptime, for `ktstr exec --timing`. */
export type GuestPhase = v.InferOutput<typeof GuestPhaseSchema>
export type SchedulerExit = v.InferOutput<typeof SchedulerExitSchema>
/** guest → host control messages (FrameType.Control, JSON). */
export type GuestMessage = v.InferOutput<typeof GuestMessageSchema>

const fsRequest = { [ENVELOPE_MARK]: v.literal('fs'), id: v.pipe(v.number(), v.safeInteger(), v.minValue(0)), path: pathText }
const HostFsRequestSchema = v.variant('op', [
  v.object({ ...fsRequest, op: v.literal('read') }),
  // A snapshot file or a test file rewritten for inline snapshots; frames are bounded anyway (64 MiB).
  v.object({ ...fsRequest, op: v.literal('write'), content: v.string() }),
  v.object({ ...fsRequest, op: v.literal('remove') }),
])
/** guest → host: the snapshot environment's file I/O (runtime/protocol/vitest-envelope.ts). */
export type HostFsRequest = v.InferOutput<typeof HostFsRequestSchema>
export type HostFsOp = HostFsRequest extends infer R ? (R extends unknown ? Omit<R, typeof ENVELOPE_MARK | 'id'> : never) : never

const monitorRequest = { [ENVELOPE_MARK]: v.literal('monitor'), id: v.pipe(v.number(), v.safeInteger(), v.minValue(0)) }
/** Keys and values to write are checked against the map's or global's BTF type on the host (src/monitor/bpf). */
const MonitorRequestSchema = v.variant('op', [
  v.object({ ...monitorRequest, op: v.picklist(['status', 'sample', 'mark', 'maps', 'globals']) }),
  v.object({ ...monitorRequest, op: v.literal('window'), from: v.pipe(v.number(), v.minValue(0)) }),
  v.object({ ...monitorRequest, op: v.literal('map-read'), map: name }),
  v.object({ ...monitorRequest, op: v.literal('map-write'), map: name, key: v.unknown(), value: v.unknown() }),
  v.object({ ...monitorRequest, op: v.literal('global-set'), name, value: v.unknown() }),
])

/**
 * The outer shape of what Vitest's worker sends in Vitest frames, as far as the pool and Vitest's
 * PoolRunner/birpc read it: a worker response, or a birpc request ('q') or response ('s').
 * The payloads (test results, errors) are Vitest's business and pass unchanged.
 */
const WorkerResponseSchema = v.looseObject({ __vitest_worker_response__: v.literal(true), type: name })
const BirpcSchema = v.variant('t', [v.looseObject({ t: v.literal('q'), m: name, a: v.array(v.unknown()), i: v.optional(name) }), v.looseObject({ t: v.literal('s'), i: name })])
export type VitestFrame = v.InferOutput<typeof WorkerResponseSchema> | v.InferOutput<typeof BirpcSchema>

/** Parse a control payload from the guest. Throws MalformedMessage, and nothing else. */
export function decodeGuestMessage(payload: Uint8Array): GuestMessage {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'))
  } catch {
    throw new MalformedMessage('control', `not JSON (${payload.length} bytes)`)
  }
  return parseGuestMessage(value)
}

/** Check a parsed control message from the guest. Throws MalformedMessage, and nothing else. */
export function parseGuestMessage(value: unknown): GuestMessage {
  return check(GuestMessageSchema, value, 'kind', 'control')
}

/** Check a snapshot bridge request from the guest. Throws MalformedMessage, and nothing else. */
export function parseHostFsRequest(value: unknown): HostFsRequest {
  return check(HostFsRequestSchema, value, undefined, 'fs')
}

/** Check a monitor/bpf API request from the guest (monitor.ts). Throws MalformedMessage, and nothing else. */
export function parseMonitorRequest(value: unknown): MonitorRequest {
  return check(MonitorRequestSchema, value, undefined, 'monitor') as MonitorRequest
}

/**
 * Check a v8-deserialized Vitest frame from the guest (ktstr's own envelopes excepted). Returns the
 * value itself, unchanged. Throws MalformedMessage, and nothing else.
 */
export function parseVitestFrame(value: unknown): VitestFrame {
  const response = isRecord(value) && '__vitest_worker_response__' in value
  check(response ? WorkerResponseSchema : BirpcSchema, value, undefined, 'Vitest')
  return value as VitestFrame
}

/** Longest piece of a received value quoted in an error. */
const QUOTE_MAX = 60

function check<S extends v.GenericSchema>(schema: S, value: unknown, key: string | undefined, what: string): v.InferOutput<S> {
  let result: v.SafeParseResult<S>
  try {
    result = v.safeParse(schema, value)
  } catch (e) {
    throw new MalformedMessage(what, `cannot be checked (${clip(e instanceof Error ? e.message : String(e))})`)
  }
  if (result.success) return result.output
  const issue = result.issues[0]
  const where = issue.path?.map((p) => String(p.key)).join('.')
  // Name the message by its discriminator (`kind`) when that is one we know.
  const tag = key && isRecord(value) ? value[key] : undefined
  const known = typeof tag === 'string' && where !== key
  let detail: string
  if (!isRecord(value)) detail = `expected an object, got ${describe(value)}`
  else if (key && where === key) detail = `unknown ${key} ${clip(issue.received)}`
  else if (where && issue.received === 'undefined') detail = `${where}: missing`
  else detail = `${where ? `${where}: ` : ''}expected ${clip(issue.expected ?? 'a valid value')}, got ${clip(issue.received)}`
  throw new MalformedMessage(known ? (tag as string) : what, detail)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `the string ${clip(JSON.stringify(value))}`
  return clip(String(value))
}

/** A guest-chosen string made safe to quote in one host line: control characters escaped, length capped. */
function clip(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes
  const line = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return line.length > QUOTE_MAX ? `${line.slice(0, QUOTE_MAX)}…` : line
}
