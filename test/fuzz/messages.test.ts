// Fuzz target: the host's validation of what the guest sends (runtime/protocol/guest-schema.ts:
// control messages, snapshot bridge requests, the outer shape of Vitest frames) and the guest's
// decoding of host control messages (runtime/protocol/messages.ts). Inputs: arbitrary bytes,
// arbitrary JSON values, and valid messages mutated (fields dropped, retyped or added, kinds
// changed, prototype keys). Properties: a message whose fields have the declared types, or
// MalformedMessage with one line "guest sent a malformed <kind> message: ..."; never another
// exception. Valid messages come back unchanged.
import fc from 'fast-check'
import { describe } from 'vitest'
import { MalformedMessage } from '../../runtime/protocol/errors.js'
import { decodeGuestMessage, parseGuestMessage, parseHostFsRequest, parseVitestFrame } from '../../runtime/protocol/guest-schema.js'
import { decodeHostMessage, encodeMessage, type GuestMessage } from '../../runtime/protocol/messages.js'
import { ENVELOPE_MARK } from '../../runtime/protocol/vitest-envelope.js'
import { check, fuzz, isOneLine } from './config.js'

type Json = unknown
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown) => typeof v === 'string'
const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v)
const strOrNull = (v: unknown) => v === null || str(v)
const numOrNull = (v: unknown) => v === null || num(v)
const PHASES = ['init', 'mounted', 'scheduler-attached', 'command-started', 'vitest-ready']

/** The declared shape of a scheduler's exit (messages.ts), checked independently of the schema. */
function isSchedulerExit(v: unknown): boolean {
  return isObj(v) && numOrNull(v.code) && strOrNull(v.signal) && str(v.output) && (v.reason === undefined || str(v.reason))
}

/** The declared GuestMessage union, checked field by field. */
function isGuestMessage(m: unknown): m is GuestMessage {
  if (!isObj(m)) return false
  switch (m.kind) {
    case 'hello':
      return num(m.uptimeMs) && str(m.nodeVersion)
    case 'phase':
      return PHASES.includes(m.phase as string) && num(m.uptimeMs)
    case 'scheduler-failed':
      return str(m.scheduler) && str(m.message) && (m.exit === undefined || isSchedulerExit(m.exit))
    case 'scheduler-exited':
      return str(m.scheduler) && isSchedulerExit(m.exit)
    case 'exit':
      return numOrNull(m.code) && strOrNull(m.signal) && num(m.uptimeMs)
    case 'fatal':
      return str(m.message)
    case 'stdin-ack':
      return num(m.bytes) && (m.bytes as number) >= 1
    default:
      return false
  }
}

function isHostFsRequest(m: unknown): boolean {
  if (!isObj(m) || m[ENVELOPE_MARK] !== 'fs' || !num(m.id) || !str(m.path)) return false
  return m.op === 'read' || m.op === 'remove' || (m.op === 'write' && str(m.content))
}

function isVitestFrame(m: unknown): boolean {
  if (!isObj(m)) return false
  if (m.__vitest_worker_response__ === true) return str(m.type)
  if (m.t === 'q') return str(m.m) && Array.isArray(m.a) && (m.i === undefined || str(m.i))
  if (m.t === 's') return str(m.i)
  return false
}

/** Runs a guest-input check: a value of the declared type, or one MalformedMessage line. */
function acceptOrMalformed(run: () => unknown, typed: (v: unknown) => boolean, input: () => string): unknown {
  let out: unknown
  try {
    out = run()
  } catch (e) {
    check(e instanceof MalformedMessage, () => `not a MalformedMessage for ${input()}: ${e instanceof Error ? e.stack : String(e)}`)
    check(isOneLine(e.message) && e.message.startsWith('guest sent a malformed '), () => `bad message for ${input()}: ${JSON.stringify(e.message)}`)
    return undefined
  }
  check(typed(out), () => `accepted ${safeJson(out)} from ${input()}`)
  return out
}

const safeJson = (v: unknown) => {
  try {
    return JSON.stringify(v)?.slice(0, 400) ?? String(v)
  } catch {
    return String(v)
  }
}

const uptime = fc.nat()
const signal = fc.option(fc.constantFrom('SIGKILL', 'SIGTERM', 'SIGSEGV', 'SIGRTMIN+3'), { nil: null })
const code = fc.option(fc.nat(255), { nil: null })
const text = fc.string({ unit: 'grapheme', maxLength: 40 })
const schedExit = fc.record({ code, signal, output: text, reason: text }, { requiredKeys: ['code', 'signal', 'output'] })

const validGuestArb: fc.Arbitrary<GuestMessage> = fc.oneof(
  fc.record({ kind: fc.constant('hello' as const), uptimeMs: uptime, nodeVersion: fc.constantFrom('v20.19.0', 'v22.1.0', '') }),
  fc.record({ kind: fc.constant('phase' as const), phase: fc.constantFrom(...(PHASES as ['init'])), uptimeMs: uptime }),
  fc.record({ kind: fc.constant('scheduler-failed' as const), scheduler: text, message: text, exit: schedExit }, { requiredKeys: ['kind', 'scheduler', 'message'] }),
  fc.record({ kind: fc.constant('scheduler-exited' as const), scheduler: text, exit: schedExit }),
  fc.record({ kind: fc.constant('exit' as const), code, signal, uptimeMs: uptime }),
  fc.record({ kind: fc.constant('fatal' as const), message: text }),
  fc.record({ kind: fc.constant('stdin-ack' as const), bytes: fc.integer({ min: 1, max: 1 << 20 }) }),
)

/** Any JSON value, with some of the values a schema might trip over. */
const jsonArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(null, true, 0, -1, 1.5, 256, 2 ** 53, -0, 1e308, '', 'hello', [], {}, { kind: null }, { kind: {} }, { kind: 'hello' }),
  },
)

const KEYS = [
  'kind',
  'bytes',
  'uptimeMs',
  'nodeVersion',
  'phase',
  'scheduler',
  'message',
  'exit',
  'code',
  'signal',
  'output',
  'reason',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
]

type Mutation = { op: 'drop' | 'set' | 'set-exit' | 'kind'; key: string; value: Json }
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('drop', 'set', 'set-exit', 'kind'),
  key: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KEYS) }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) }),
  value: fc.oneof(jsonArb, fc.constantFrom('hello', 'exit', 'fatal', 'phase', 'scheduler-exited', 'scheduler-failed', 'stdin-ack', 'signal', 'resize')),
})

/** Applies the mutations to JSON text (so `__proto__` becomes an own key, as JSON.parse makes it). */
function mutate(msg: GuestMessage, muts: Mutation[]): string {
  const obj = JSON.parse(JSON.stringify(msg)) as Record<string, unknown>
  const raw: [string, string][] = []
  for (const m of muts) {
    if (m.op === 'drop') delete obj[m.key]
    else if (m.op === 'kind') obj.kind = m.value
    else if (m.op === 'set-exit' && isObj(obj.exit)) (obj.exit as Record<string, unknown>)[m.key] = m.value
    else raw.push([m.key, JSON.stringify(m.value)])
  }
  // Raw members go last and win over earlier ones with the same name, as in JSON.parse.
  const body = JSON.stringify(obj).slice(1, -1)
  const extra = raw.map(([k, v]) => `${JSON.stringify(k)}:${v}`)
  return `{${[body, ...extra].filter(Boolean).join(',')}}`
}

const bytesOf = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'))

const deep = (open: string, inner: string, close: string, n: number) => `${open.repeat(n)}${inner}${close.repeat(n)}`
/** Texts a hostile guest might send: deep nesting, prototype keys, out-of-range numbers. */
const HOSTILE = [
  `{"kind":"fatal","message":"x","extra":${deep('[', '', ']', 20_000)}}`,
  `{"kind":"scheduler-exited","scheduler":"x","exit":${deep('{"a":', '1', '}', 20_000)}}`,
  deep('[', '', ']', 20_000),
  deep('[', '', '', 20_000),
  '{"kind":"hello","uptimeMs":1,"nodeVersion":"v","__proto__":{"kind":"fatal"}}',
  '{"__proto__":{"kind":"hello","uptimeMs":1,"nodeVersion":"v"}}',
  '{"kind":"hello","uptimeMs":1e400,"nodeVersion":"v"}',
  '{"kind":"exit","code":0,"signal":null,"uptimeMs":-0}',
  '{"kind":"exit","code":1e-400,"signal":"SIGKILL","uptimeMs":0}',
  `{"kind":"fatal","message":"${'x'.repeat(70_000)}"}`,
]

describe('fuzz: guest message validation', () => {
  fuzz('valid control messages decode unchanged', () =>
    fc.property(validGuestArb, (msg) => {
      const out = acceptOrMalformed(
        () => decodeGuestMessage(encodeMessage(msg)),
        isGuestMessage,
        () => safeJson(msg),
      )
      check(out !== undefined && JSON.stringify(out) === JSON.stringify(msg), () => `${safeJson(msg)} came back as ${safeJson(out)}`)
    }),
  )

  fuzz('mutated control messages: typed message or MalformedMessage', () =>
    fc.property(validGuestArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (msg, muts) => {
      const json = mutate(msg, muts)
      acceptOrMalformed(
        () => decodeGuestMessage(bytesOf(json)),
        isGuestMessage,
        () => json,
      )
    }),
  )

  fuzz('arbitrary JSON values and bytes as control messages', () =>
    fc.property(
      fc.oneof(
        { weight: 6, arbitrary: jsonArb.map((v) => bytesOf(JSON.stringify(v))) },
        { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }) },
        { weight: 1, arbitrary: fc.constantFrom(...HOSTILE).map(bytesOf) },
        {
          weight: 6,
          arbitrary: fc.tuple(validGuestArb, fc.nat(), fc.nat(255)).map(([m, at, b]) => {
            const bytes = new Uint8Array(encodeMessage(m))
            bytes[at % bytes.length] = b
            return bytes
          }),
        },
      ),
      (bytes) => {
        acceptOrMalformed(
          () => decodeGuestMessage(bytes),
          isGuestMessage,
          () => JSON.stringify(Buffer.from(bytes).toString('latin1')),
        )
      },
    ),
  )

  fuzz('parsed values of any shape as control messages', () =>
    fc.property(fc.oneof(jsonArb, fc.anything({ maxDepth: 2 })), (value) => {
      acceptOrMalformed(
        () => parseGuestMessage(value),
        isGuestMessage,
        () => safeJson(value),
      )
    }),
  )

  const fsArb = fc.record(
    {
      [ENVELOPE_MARK]: fc.oneof(fc.constant('fs'), jsonArb),
      id: fc.oneof(fc.nat(), jsonArb),
      path: fc.oneof(fc.string({ maxLength: 20 }), jsonArb),
      op: fc.oneof(fc.constantFrom('read', 'write', 'remove', 'chmod'), jsonArb),
      content: fc.oneof(fc.string({ maxLength: 20 }), jsonArb),
    },
    { requiredKeys: [] },
  )
  fuzz('snapshot bridge requests: typed request or MalformedMessage', () =>
    fc.property(fc.oneof(fsArb, jsonArb), (value) => {
      acceptOrMalformed(
        () => parseHostFsRequest(value),
        isHostFsRequest,
        () => safeJson(value),
      )
    }),
  )

  const vitestArb = fc.oneof(
    fc.record({ __vitest_worker_response__: fc.oneof(fc.constant(true), jsonArb), type: fc.oneof(fc.string({ maxLength: 10 }), jsonArb) }, { requiredKeys: [] }),
    fc.record(
      {
        t: fc.oneof(fc.constantFrom('q', 's', 'x'), jsonArb),
        m: fc.oneof(fc.string({ maxLength: 10 }), jsonArb),
        a: fc.oneof(fc.array(jsonArb, { maxLength: 3 }), jsonArb),
        i: fc.oneof(fc.string({ maxLength: 10 }), jsonArb),
      },
      { requiredKeys: [] },
    ),
    jsonArb,
    fc.anything({ maxDepth: 2 }),
  )
  fuzz('Vitest frames: the value itself or MalformedMessage', () =>
    fc.property(vitestArb, (value) => {
      const out = acceptOrMalformed(
        () => parseVitestFrame(value),
        isVitestFrame,
        () => safeJson(value),
      )
      if (out !== undefined) check(out === value, 'parseVitestFrame returned another value')
    }),
  )
})

describe('fuzz: host message decoding in the guest', () => {
  const HOST_KINDS = ['signal', 'resize', 'shutdown']
  fuzz('arbitrary bytes: a known kind or the one decode error', () =>
    fc.property(
      fc.oneof(
        jsonArb.map((v) => bytesOf(JSON.stringify(v))),
        fc.uint8Array({ maxLength: 48 }),
        fc.constantFrom('signal', 'resize', 'shutdown', 'hello').map((k) => bytesOf(JSON.stringify({ kind: k }))),
      ),
      (bytes) => {
        let msg: { kind: string }
        try {
          msg = decodeHostMessage(bytes)
        } catch (e) {
          check(
            e instanceof Error && /^malformed control message from the host: /.test(e.message) && isOneLine(e.message),
            () => `unexpected ${e instanceof Error ? e.stack : String(e)}`,
          )
          return
        }
        check(HOST_KINDS.includes(msg.kind), () => `accepted kind ${safeJson(msg)}`)
      },
    ),
  )
})
