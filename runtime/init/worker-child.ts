/**
 * Vitest's worker in a child node (runtime/vitest/child.ts) instead of in the init, when Vitest runs
 * with the inspector: a debugger paused in the test pauses the child only, while the init goes on
 * relaying the channel — Vitest's frames to and from the child, and the debugger's own connection
 * (relay.ts) to the child's inspector.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import type { Duplex } from 'node:stream'
import { Endpoint, type GuestEndpoint, type GuestMessage, type HostMessage } from '../protocol/index.js'
import { serveRelay } from './relay.js'

export interface ChildExit {
  code: number | null
  signal: NodeJS.Signals | null
}

export async function runWorkerInChild(endpoint: GuestEndpoint, workerEntry: string, opts: { env: Record<string, string>; cwd: string }): Promise<ChildExit> {
  const stopRelay = serveRelay(endpoint)
  const child = spawn(process.execPath, [path.join(path.dirname(workerEntry), 'child.js')], {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
  })
  // 'close': the child is gone and everything it wrote has been read.
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  // The child is ours and trusted: its control messages pass as they are.
  const link = new Endpoint<GuestMessage, HostMessage>(child.stdio[3] as Duplex, (p) => JSON.parse(Buffer.from(p).toString('utf8')) as GuestMessage)
  link.on('control', (m) => endpoint.sendControl(m))
  link.on('data', (stream, chunk) => endpoint.sendData(stream, chunk))
  link.on('vitest', (p) => endpoint.sendVitest(p))
  link.on('corrupt', () => child.kill('SIGKILL'))
  const toChild = (p: Buffer) => void link.sendVitest(p)
  const hostGone = () => link.end()
  endpoint.on('vitest', toChild)
  endpoint.on('close', hostGone)
  try {
    const [code, signal] = await exited
    return { code, signal }
  } finally {
    endpoint.off('vitest', toChild)
    endpoint.off('close', hostGone)
    stopRelay()
  }
}
