/**
 * The host's checks of what the guest sends: every field of every control message, the snapshot
 * bridge's requests and the outer shape of Vitest frames. Bad input is a MalformedMessage with one
 * line, and nothing else is ever thrown.
 */
import v8 from 'node:v8'
import { describe, expect, it } from 'vitest'
import { decodeGuestMessage, parseGuestMessage, parseHostFsRequest, parseVitestFrame } from '../../runtime/protocol/guest-schema.js'
import { ENVELOPE_MARK, encodeMessage, type GuestMessage, MalformedMessage } from '../../runtime/protocol/index.js'

const exit = { code: 1, signal: null, output: 'scx: bye\n' }
const valid: GuestMessage[] = [
  { kind: 'hello', uptimeMs: 812, nodeVersion: 'v20.19.0' },
  { kind: 'phase', phase: 'vitest-ready', uptimeMs: 900 },
  { kind: 'scheduler-failed', scheduler: 'scx_simple', message: 'did not attach' },
  { kind: 'scheduler-failed', scheduler: '/opt/scx', message: 'exited', exit },
  { kind: 'scheduler-exited', scheduler: 'scx_simple', exit: { ...exit, signal: 'SIGKILL', code: null, reason: 'runnable task stall' } },
  { kind: 'exit', code: 0, signal: null, uptimeMs: 1000 },
  { kind: 'exit', code: null, signal: 'SIGSEGV', uptimeMs: 1000 },
  { kind: 'fatal', message: 'uncaught: boom' },
  { kind: 'stdin-ack', bytes: 65536 },
]

/** The one-line error for a control payload (JSON of `value`, or raw text). */
function malformed(payload: unknown, raw = false): string {
  try {
    decodeGuestMessage(raw ? Buffer.from(payload as string) : encodeMessage(payload as GuestMessage))
  } catch (e) {
    expect(e).toBeInstanceOf(MalformedMessage)
    const message = (e as Error).message
    expect(message).not.toContain('\n')
    expect(message.length).toBeLessThan(300)
    return message
  }
  throw new Error(`accepted ${JSON.stringify(payload)}`)
}

describe('guest control messages', () => {
  it('accepts every kind the guest sends, with its fields', () => {
    for (const msg of valid) expect(decodeGuestMessage(encodeMessage(msg))).toEqual(msg)
  })

  it('keeps only the known fields', () => {
    const msg = parseGuestMessage({ kind: 'fatal', message: 'x', extra: { huge: 'y' }, __proto__: { polluted: true } })
    expect(msg).toEqual({ kind: 'fatal', message: 'x' })
    expect(Object.keys(msg)).toEqual(['kind', 'message'])
  })

  it('quotes what the guest sent on one line: control characters escaped (no forged host lines)', () => {
    expect(malformed({ kind: 'phase', phase: 'mo\nted', uptimeMs: 1 })).toMatch(/got "mo\\u000ated"/)
    expect(malformed({ kind: 'reboot\u2028host' })).toContain('reboot\\u2028host')
  })

  it('names the kind and the field that is wrong', () => {
    expect(malformed({ kind: 'scheduler-exited', scheduler: 'scx_simple' })).toBe('guest sent a malformed scheduler-exited message: exit: missing')
    expect(malformed({ kind: 'scheduler-exited', scheduler: 'scx_simple', exit: { ...exit, code: '1' } })).toBe(
      'guest sent a malformed scheduler-exited message: exit.code: expected number, got "1"',
    )
    expect(malformed({ kind: 'exit', code: 0, signal: null })).toMatch(/^guest sent a malformed exit message: uptimeMs: missing$/)
    expect(malformed({ kind: 'exit', code: 300, signal: null, uptimeMs: 1 })).toMatch(/malformed exit message: code: expected <=255/)
    expect(malformed({ kind: 'exit', code: 0, signal: 'rm -rf /', uptimeMs: 1 })).toMatch(/malformed exit message: signal:/)
    expect(malformed({ kind: 'hello', uptimeMs: -1, nodeVersion: 'v20' })).toMatch(/malformed hello message: uptimeMs: expected >=0, got -1/)
    expect(malformed({ kind: 'hello', uptimeMs: 1.5, nodeVersion: 'v20' })).toMatch(/malformed hello message: uptimeMs:/)
    expect(malformed({ kind: 'phase', phase: 'pwned', uptimeMs: 1 })).toMatch(/malformed phase message: phase: expected \("init" \|/)
    expect(malformed({ kind: 'fatal', message: null })).toBe('guest sent a malformed fatal message: message: expected string, got null')
    expect(malformed({ kind: 'stdin-ack', bytes: -1 })).toMatch(/^guest sent a malformed stdin-ack message: bytes: expected >=1, got -1$/)
    expect(malformed({ kind: 'stdin-ack', bytes: 2 ** 40 })).toMatch(/^guest sent a malformed stdin-ack message: bytes: expected <=67108864/)
    expect(malformed({ kind: 'scheduler-failed', scheduler: 'x', message: 'y', exit: [] })).toMatch(/^guest sent a malformed scheduler-failed message: exit.code: missing$/)
  })

  it('refuses what is not a message at all', () => {
    expect(malformed('null', true)).toBe('guest sent a malformed control message: expected an object, got null')
    expect(malformed('[1,2]', true)).toBe('guest sent a malformed control message: expected an object, got an array')
    expect(malformed('"hello"', true)).toBe('guest sent a malformed control message: expected an object, got the string "hello"')
    expect(malformed('42', true)).toBe('guest sent a malformed control message: expected an object, got 42')
    expect(malformed('{not json', true)).toBe('guest sent a malformed control message: not JSON (9 bytes)')
    expect(malformed(Buffer.from([0xff, 0xfe, 0x00]).toString('latin1'), true)).toMatch(/not JSON/)
    expect(malformed({ kind: 'reboot' })).toBe('guest sent a malformed control message: unknown kind "reboot"')
    expect(malformed({ kind: 7 })).toBe('guest sent a malformed control message: unknown kind 7')
    expect(malformed({})).toBe('guest sent a malformed control message: unknown kind undefined')
  })

  it('bounds strings, and quotes only a little of a huge one', () => {
    const huge = 'x'.repeat(2 * 1024 * 1024)
    expect(malformed({ kind: 'fatal', message: huge })).toBe(`guest sent a malformed fatal message: message: expected <=${1024 * 1024}, got ${huge.length}`)
    const line = malformed({ kind: huge })
    expect(line).toMatch(/^guest sent a malformed control message: unknown kind "x+…$/)
    expect(malformed({ kind: 'hello', uptimeMs: 1, nodeVersion: huge.slice(0, 300) })).toMatch(/nodeVersion: expected <=256, got 300/)
  })

  it('turns a payload JSON cannot even parse (deep nesting) into the same one line', () => {
    expect(malformed('['.repeat(200_000), true)).toMatch(/not JSON/)
  })
})

describe('snapshot bridge requests', () => {
  const req = { [ENVELOPE_MARK]: 'fs', id: 3 }
  it('accepts read, write and remove with their fields', () => {
    expect(parseHostFsRequest({ ...req, op: 'read', path: '/p/a.snap' })).toEqual({ ...req, op: 'read', path: '/p/a.snap' })
    expect(parseHostFsRequest({ ...req, op: 'write', path: '/p/a.snap', content: 'x' })).toMatchObject({ content: 'x' })
    expect(parseHostFsRequest({ ...req, op: 'remove', path: '/p/a.snap' })).toMatchObject({ op: 'remove' })
  })

  it('refuses bad fields with one line', () => {
    const bad = (v: unknown) => {
      expect(() => parseHostFsRequest(v)).toThrow(MalformedMessage)
      return (() => {
        try {
          parseHostFsRequest(v)
        } catch (e) {
          return (e as Error).message
        }
      })()
    }
    expect(bad({ ...req, op: 'write', path: '/p/a.snap' })).toBe('guest sent a malformed fs message: content: missing')
    expect(bad({ ...req, op: 'read', path: 5 })).toBe('guest sent a malformed fs message: path: expected string, got 5')
    expect(bad({ ...req, op: 'chmod', path: '/p' })).toMatch(/^guest sent a malformed fs message: op: expected \("read" \|/)
    expect(bad({ ...req, id: -1, op: 'read', path: '/p' })).toMatch(/malformed fs message: id:/)
    expect(bad({ [ENVELOPE_MARK]: 'fs-reply', id: 1, op: 'read', path: '/p' })).toMatch(/malformed fs message: __ktstr__: expected "fs"/)
    expect(bad(null)).toBe('guest sent a malformed fs message: expected an object, got null')
  })
})

describe('Vitest frames', () => {
  it('passes worker responses and birpc calls through unchanged', () => {
    const started = { __vitest_worker_response__: true, type: 'started', error: { message: 'x', extra: new Map() } }
    expect(parseVitestFrame(started)).toBe(started)
    const call = { t: 'q', i: 'abc', m: 'onCollected', a: [[{ id: 'f' }]] }
    expect(parseVitestFrame(call)).toBe(call)
    expect(parseVitestFrame({ t: 'q', m: 'onUserConsoleLog', a: [] })).toBeTruthy()
    expect(parseVitestFrame({ t: 's', i: 'abc', r: 1 })).toBeTruthy()
  })

  it('refuses null, primitives and unknown shapes with one line', () => {
    for (const value of [null, undefined, 7, 'str', [], new Map(), { t: 'q', m: 'x' }, { t: 'x' }, { __vitest_worker_response__: true }, { t: 's' }]) {
      const roundTripped = v8.deserialize(v8.serialize(value))
      expect(() => parseVitestFrame(roundTripped), String(value)).toThrow(MalformedMessage)
    }
    expect(() => parseVitestFrame(null)).toThrow('guest sent a malformed Vitest message: expected an object, got null')
    expect(() => parseVitestFrame({ t: 'q', m: 'onCollected', a: 'x' })).toThrow('guest sent a malformed Vitest message: a: expected Array, got "x"')
    expect(() => parseVitestFrame({ t: 'e' })).toThrow('guest sent a malformed Vitest message: t: expected ("q" | "s"), got "e"')
    expect(() => parseVitestFrame({ __vitest_worker_response__: true, type: 1 })).toThrow('guest sent a malformed Vitest message: type: expected string, got 1')
  })
})
