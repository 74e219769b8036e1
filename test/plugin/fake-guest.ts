/**
 * A fake `bootGuest` for the pool tests: each "guest" is a child node process (fake-guest-main.mjs)
 * on a unix socket, with a GuestSession that behaves like src/vm/session-runner.ts (outcomes from
 * control messages, a console tail, the wall-clock limit, stop = shutdown then kill).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeGuestMessage } from '../../runtime/protocol/guest-schema.js'
import { Endpoint, type GuestMessage, type HostEndpoint } from '../../runtime/protocol/index.js'
import { KtstrError } from '../../src/util/errors.js'
import { BootFailure } from '../../src/vm/boot-failure.js'
import type { GuestOutcome, GuestSession } from '../../src/vm/session.js'
import type { VmRequest } from '../../src/vm/spec/request.js'

const MAIN = fileURLToPath(new URL('./fake-guest-main.mjs', import.meta.url))

export interface FakeGuests {
  boot(req: VmRequest): Promise<GuestSession>
  requests: VmRequest[]
  /** Child processes still running. */
  running(): number
}

export function fakeGuests(): FakeGuests {
  const requests: VmRequest[] = []
  const children = new Set<number>()
  return {
    requests,
    running: () => children.size,
    async boot(req) {
      requests.push(req)
      if (req.scheduler === 'scx_noboot') {
        throw new BootFailure(
          'guest failed to boot: the VM exited (exit code 1) before the guest reported a result',
          { kind: 'vm-died', message: 'the VM exited (exit code 1)' },
          ['[    0.900000] Run /init as init process', '[    0.950000] Kernel panic - not syncing: No working init found.'],
        )
      }
      if (req.scheduler === 'scx_missing') throw new KtstrError('scheduler scx_missing is not in the kernel\'s scx/ folder')
      return startChild(req, children)
    },
  }
}

async function startChild(req: VmRequest, children: Set<number>): Promise<GuestSession> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-fake-'))
  const socketPath = path.join(dir, 'channel.sock')
  const specPath = path.join(dir, 'spec.json')
  fs.writeFileSync(specPath, JSON.stringify({ ...req, extraImagePaths: undefined }))
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(socketPath, r))
  const connected = new Promise<net.Socket>((r) => server.once('connection', r))

  const child = spawn(process.execPath, [MAIN, socketPath, specPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child.pid!)
  const lines: string[] = []
  let partial = ''
  const onConsole = (b: Buffer) => {
    const parts = (partial + b.toString('utf8')).split('\n')
    partial = parts.pop()!
    lines.push(...parts)
  }
  child.stdout.on('data', onConsole)
  child.stderr.on('data', onConsole)

  let reported: GuestOutcome | undefined
  let forced: GuestOutcome | undefined
  const timeoutS = req.timeoutS ?? 300
  const timer = setTimeout(() => {
    forced ??= { kind: 'timeout', afterS: timeoutS }
    child.kill('SIGKILL')
  }, timeoutS * 1000)
  const done = new Promise<GuestOutcome>((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      children.delete(child.pid!)
      server.close()
      fs.rmSync(dir, { recursive: true, force: true })
      const panic = lines.map((l) => /Kernel panic - not syncing: (.*)$/.exec(l)?.[1]).find(Boolean)
      resolve(
        forced ??
          reported ??
          (panic ? { kind: 'panic', message: panic } : { kind: 'vm-died', message: `the VM exited (${signal ?? code})` }),
      )
    })
  })

  const socket = await Promise.race([connected, done.then(() => undefined)])
  if (!socket) throw new BootFailure('guest failed to boot: no channel', await done, lines.slice(-30))
  const channel: HostEndpoint = new Endpoint(socket, decodeGuestMessage)
  const onGuest = (msg: GuestMessage) => {
    switch (msg.kind) {
      case 'exit':
        reported ??= { kind: 'exited', code: msg.code, signal: msg.signal }
        break
      case 'scheduler-failed':
        reported ??= { kind: 'scheduler-failed', scheduler: msg.scheduler, message: msg.message, ...(msg.exit ? { exit: msg.exit } : {}) }
        break
      case 'scheduler-exited':
        reported ??= { kind: 'scheduler-exited', scheduler: msg.scheduler, exit: msg.exit }
        break
      case 'fatal':
        reported ??= { kind: 'guest-error', message: msg.message }
        break
      default:
        return
    }
    channel.sendControl({ kind: 'shutdown' })
  }
  const hello = new Promise<boolean>((resolve) => {
    channel.on('control', (msg) => {
      if (msg.kind === 'hello') resolve(true)
      onGuest(msg)
    })
    void done.then(() => resolve(false))
  })
  if (!(await hello)) throw new BootFailure('guest failed to boot', await done, lines.slice(-30))

  return {
    channel,
    done,
    timing: {},
    consoleTail: (n = 40) => (partial ? [...lines, partial] : lines).slice(-n),
    async stop() {
      forced ??= reported ?? { kind: 'stopped' }
      channel.sendControl({ kind: 'shutdown' })
      const grace = setTimeout(() => child.kill('SIGKILL'), 5000)
      const outcome = await done
      clearTimeout(grace)
      return outcome
    },
    kill: () => void child.kill('SIGKILL'),
  }
}
