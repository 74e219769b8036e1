/**
 * A guest that sends a malformed control message: the real session (startSession) over a real unix
 * socket, the test writing the guest's frames. The session must end at once with the one-line
 * outcome and kill the VM — never throw in the socket's 'data' handler (Vitest reports any such
 * uncaught exception as an error of this file) and never wait for the wall-clock limit (600 s here,
 * far past the test's own timeout).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeFrame, encodeMessage, FrameType, type GuestMessage } from '../../runtime/protocol/index.js'
import { BootFailure } from '../../src/vm/boot-failure.js'
import { describeOutcome } from '../../src/vm/outcome.js'
import { startSession } from '../../src/vm/session-runner.js'
import { fakeVm } from '../helpers/fake-vm.js'
import { socketPair } from '../helpers/socket-pair.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

const control = (msg: unknown) => encodeFrame(FrameType.Control, Buffer.from(JSON.stringify(msg)))
const raw = (text: string) => encodeFrame(FrameType.Control, Buffer.from(text))
const hello = encodeMessage({ kind: 'hello', uptimeMs: 5, nodeVersion: process.version })

async function session() {
  const [host, guest, closePair] = await socketPair()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-fakevm-'))
  cleanups.push(closePair, () => fs.rmSync(dir, { recursive: true, force: true }))
  const vm = fakeVm(host)
  const started = startSession(vm, { t0: performance.now(), imageMs: 0, timeoutS: 600, tmpDir: dir })
  return { vm, guest, started }
}

const huge = 'A'.repeat(3 * 1024 * 1024)
const cases: [string, Buffer, string][] = [
  ['scheduler-exited without exit', control({ kind: 'scheduler-exited', scheduler: 'scx_simple' }), 'guest sent a malformed scheduler-exited message: exit: missing'],
  ['exit with a string code', control({ kind: 'exit', code: '0', signal: null, uptimeMs: 1 }), 'guest sent a malformed exit message: code: expected number, got "0"'],
  [
    'scheduler-failed with a null message',
    control({ kind: 'scheduler-failed', scheduler: 'x', message: null }),
    'guest sent a malformed scheduler-failed message: message: expected string, got null',
  ],
  ['fatal with an array message', control({ kind: 'fatal', message: ['a'] }), 'guest sent a malformed fatal message: message: expected string, got Array'],
  [
    'phase with an unknown phase',
    control({ kind: 'phase', phase: 'x', uptimeMs: 1 }),
    'guest sent a malformed phase message: phase: expected ("init" | "mounted" | "scheduler-attached" | "command-starte…, got "x"',
  ],
  ['a huge fatal message', control({ kind: 'fatal', message: huge }), `guest sent a malformed fatal message: message: expected <=1048576, got ${huge.length}`],
  ['null', raw('null'), 'guest sent a malformed control message: expected an object, got null'],
  ['an array', raw('[{"kind":"exit"}]'), 'guest sent a malformed control message: expected an object, got an array'],
  ['an unknown kind', control({ kind: 'reboot-host' }), 'guest sent a malformed control message: unknown kind "reboot-host"'],
  ['not JSON', raw('{"kind":'), 'guest sent a malformed control message: not JSON (8 bytes)'],
]

describe('a malformed control message from a running guest', () => {
  for (const [name, frame, line] of cases) {
    it(`${name}: ends the session with "${line.slice(0, 60)}…" and kills the VM`, async () => {
      const { vm, guest, started } = await session()
      guest.write(encodeFrame(FrameType.Control, hello))
      const s = await started
      guest.write(frame)
      const outcome = await s.done
      expect(outcome).toEqual({ kind: 'malformed-message', message: line })
      expect(describeOutcome(outcome)).toBe(line)
      expect(vm.kills).toBe(1)
    })
  }

  it('a later well-formed message is not acted on', async () => {
    const { guest, started } = await session()
    guest.write(encodeFrame(FrameType.Control, hello))
    const s = await started
    const exit: GuestMessage = { kind: 'exit', code: 0, signal: null, uptimeMs: 9 }
    guest.write(Buffer.concat([control({ kind: 'exit' }), control(exit)]))
    expect(await s.done).toEqual({ kind: 'malformed-message', message: 'guest sent a malformed exit message: code: missing' })
  })

  it('the same guest, well-formed, still reports its result', async () => {
    const { guest, started } = await session()
    guest.write(encodeFrame(FrameType.Control, hello))
    const s = await started
    guest.write(control({ kind: 'scheduler-exited', scheduler: 'scx_simple', exit: { code: 1, signal: null, output: 'bye' } }))
    // The host answers a result with shutdown; a guest would power off: here the VM just goes.
    setTimeout(() => guest.destroy(), 10)
    const outcome = await s.done
    expect(outcome).toMatchObject({ kind: 'scheduler-exited', scheduler: 'scx_simple', exit: { code: 1 } })
  })
})

describe('a malformed message before the hello', () => {
  it('fails the boot with the one line', async () => {
    const { guest, started } = await session()
    guest.write(control({ kind: 'hello', uptimeMs: 'soon' }))
    const err = await started.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BootFailure)
    expect((err as Error).message).toBe('guest failed to boot: guest sent a malformed hello message: uptimeMs: expected number, got "soon"')
  })
})
