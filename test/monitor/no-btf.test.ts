// A guest kernel without BTF: the real session code over a fake VM, with a kernel whose config (as
// resolveKernel reads it) says CONFIG_DEBUG_INFO_BTF is not set, or whose bzImage is not a kernel. The monitor is off with one warning line saying why, the guest's monitor API
// (through the pool's MonitorHost, as in a sched file) rejects with that reason, and the run passes.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { MonitorHost } from '../../plugin/monitor-host.js'
import { decodeGuestFrame } from '../../plugin/worker-transport.js'
import { monitor } from '../../runtime/api/monitor.js'
import { decodeHostMessage, Endpoint, type GuestMessage, type HostMessage } from '../../runtime/protocol/index.js'
import { installMonitorBridge } from '../../runtime/vitest/monitor-bridge.js'
import { startSession } from '../../src/vm/session-runner.js'
import { fakeVm } from '../helpers/fake-vm.js'
import { socketPair } from '../helpers/socket-pair.js'
import { fakeGuest } from './fake-kernel.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
  vi.restoreAllMocks()
})

describe('a guest kernel without BTF', () => {
  it.each([
    [
      'built without CONFIG_DEBUG_INFO_BTF',
      new Map([['CONFIG_DEBUG_INFO_BTF', 'n']]),
      (k: string) => `kernel ${k} was built without CONFIG_DEBUG_INFO_BTF=y, so it has no BTF; build one with \`ktstr kernel build\``,
    ],
    ['whose bzImage gives no BTF', undefined, (k: string) => `cannot read BTF from kernel ${k}: not a bzImage (no "HdrS" boot header)`],
  ])('%s: the monitor is off with one line; monitor.sample() answers with it; the run passes', async (_, config, reason) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-no-btf-'))
    const bzImage = path.join(dir, 'bzImage')
    fs.writeFileSync(bzImage, Buffer.alloc(4096, 0x5a))
    const [host, guestSock, closePair] = await socketPair()
    cleanups.push(closePair, () => fs.rmSync(dir, { recursive: true, force: true }))
    const warnings: string[] = []
    const write = process.stderr.write.bind(process.stderr)
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (String(chunk).startsWith('ktstr: ')) warnings.push(String(chunk))
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest)
    })

    const vm = Object.assign(fakeVm(host), { memory: fakeGuest({ cpus: 2 }).mem })
    const plan = { kernel: { bzImage, dir, ...(config && { config }) }, cpus: 2, hz: 10, stallMs: 2000 }
    const started = startSession(vm, { t0: performance.now(), imageMs: 0, timeoutS: 600, tmpDir: fs.mkdtempSync(path.join(dir, 'run-')), monitor: plan })
    const guest = new Endpoint<HostMessage, GuestMessage>(guestSock, decodeHostMessage)
    guest.sendControl({ kind: 'hello', uptimeMs: 5, nodeVersion: process.version })
    const session = await started

    // The pool's host end of the monitor API, as pool-worker wires it.
    const monitorHost = new MonitorHost(session, path.join(dir, 'dumps'), 'qemu')
    session.channel.on('vitest', (payload) => {
      const frame = decodeGuestFrame(payload)
      if ('monitor' in frame) void monitorHost.serve(frame.monitor).then((reply) => session.channel.sendVitest(v8.serialize(reply)))
    })
    const bridge = installMonitorBridge(guest)
    guest.on('vitest', (p) => bridge.onReply(v8.deserialize(p)))
    cleanups.push(() => bridge.close())

    const status = await session.monitor
    if (status.on) throw new Error('the monitor ran on a kernel without BTF')
    expect(status.reason).toBe(reason(bzImage))
    expect(warnings).toEqual([`ktstr: warning: monitor off: ${status.reason}\n`])
    const line = await monitor.sample().then(String, (e: Error) => `${e.name}: ${e.message}`)
    expect(line).toBe(`KtstrError: monitor.sample(): the monitor is off: ${status.reason}`)
    expect(await monitor.status()).toEqual({ on: false, reason: status.reason })

    // The command (the test file) goes on and passes without the monitor.
    guest.sendControl({ kind: 'exit', code: 0, signal: null, uptimeMs: 900 })
    guestSock.once('data', () => guestSock.end())
    expect(await session.done).toEqual({ kind: 'exited', code: 0, signal: null })
    expect(fs.existsSync(path.join(dir, 'dumps'))).toBe(false)
  })
})
