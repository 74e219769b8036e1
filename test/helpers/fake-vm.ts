/**
 * VmProcesses without a VM, for driving the real session code (src/vm/session-runner.ts) over a
 * real byte stream. fakeVm: the test plays the guest by writing frames into the channel's other end.
 * childVm: a child node process plays it (a stand-in for the guest init).
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { ConsoleLog } from '../../src/vm/console.js'
import type { VmExit, VmProcess } from '../../src/vm/vm-process.js'

export interface FakeVm extends VmProcess {
  readonly kills: number
}

/**
 * kill() ends the "VM": the channel closes and `exited` settles, as when a VMM dies; the guest
 * closing its end is the VM powering off.
 */
export function fakeVm(channel: Duplex, onGone: () => void = () => channel.destroy()): FakeVm {
  let settle!: (e: VmExit) => void
  const exited = new Promise<VmExit>((r) => (settle = r))
  let kills = 0
  // The guest end closing is the VM powering off.
  channel.once('close', () => settle({ code: 0, signal: null, stderr: '' }))
  return {
    console: new ConsoleLog(),
    channel: Promise.resolve(channel),
    exited,
    startedAt: performance.now(),
    get kills() {
      return kills
    },
    kill() {
      if (kills++ > 0) return
      onGone()
      settle({ code: null, signal: 'SIGKILL', stderr: '' })
    },
  }
}

/**
 * A "VM" that is a child node process running `main` with `args`: its stdout and stderr are the
 * kernel console, it connects to the unix socket at `socketPath` as its channel, and it ends as the
 * VM does (exiting is powering off; kill() is SIGKILL).
 */
export async function childVm(main: string, args: string[], socketPath: string): Promise<VmProcess> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(socketPath, r))
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const console = new ConsoleLog()
  child.stdout.on('data', (b: Buffer) => console.push(b))
  child.stderr.on('data', (b: Buffer) => console.push(b))
  // 'close': the console has been read to its end.
  const exited = new Promise<VmExit>((resolve) => {
    child.once('close', (code, signal) => {
      server.close()
      resolve({ code, signal, stderr: '' })
    })
  })
  const channel = new Promise<Duplex>((resolve, reject) => {
    server.once('connection', resolve)
    void exited.then(() => reject(new Error('the VM exited before it connected the channel')))
  })
  return { console, channel, exited, startedAt: performance.now(), kill: () => void child.kill('SIGKILL') }
}
