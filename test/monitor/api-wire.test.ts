// The monitor/bpf API's path without a guest: the guest's bridge (runtime/vitest/monitor-bridge.ts)
// over a real channel to the host's check (guest-schema) and server (src/monitor/serve.ts) with the
// monitor off, the matchers over recorded samples, and a failure dump written with the monitor off.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeGuestFrame } from '../../plugin/worker-transport.js'
import { bpf } from '../../runtime/api/bpf.js'
import { monitor } from '../../runtime/api/monitor.js'
import { seriesOf } from '../../runtime/api/monitor-counters.js'
import { monitorMatchers } from '../../runtime/api/monitor-matchers.js'
import { Report } from '../../runtime/api/report.js'
import { parseMonitorRequest } from '../../runtime/protocol/guest-schema.js'
import { Endpoint, type GuestMessage, type HostMessage, MalformedMessage } from '../../runtime/protocol/index.js'
import type { MonitorSample, MonitorWindow } from '../../runtime/protocol/monitor.js'
import { installMonitorBridge } from '../../runtime/vitest/monitor-bridge.js'
import { collectDump, dumpSummary } from '../../src/monitor/dump.js'
import { writeDump } from '../../src/monitor/dump-file.js'
import { MonitorServer } from '../../src/monitor/serve.js'
import { socketPair } from '../helpers/socket-pair.js'

expect.extend(monitorMatchers)

const OFF = { on: false as const, reason: 'the guest kernel has no BTF (CONFIG_DEBUG_INFO_BTF=n)' }
const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

/** The guest's bridge and the host's server on the two ends of a real socket pair, as in a guest. */
async function wired(status: () => Promise<typeof OFF | undefined>) {
  const [hostSock, guestSock, close] = await socketPair()
  const host = new Endpoint<GuestMessage, HostMessage>(hostSock, () => ({ kind: 'hello', uptimeMs: 0, nodeVersion: '' }))
  const guest = new Endpoint<HostMessage, GuestMessage>(guestSock, () => ({ kind: 'shutdown' }))
  const server = new MonitorServer(status)
  const refused: string[] = []
  host.on('vitest', (payload) => {
    const frame = decodeGuestFrame(payload)
    if ('monitor' in frame) void server.serve(frame.monitor).then((reply) => host.sendVitest(v8.serialize(reply)))
    else if ('refused' in frame) refused.push(frame.refused)
  })
  const bridge = installMonitorBridge(guest)
  guest.on('vitest', (p) => bridge.onReply(v8.deserialize(p)))
  cleanups.push(() => (bridge.close(), close()))
  return { refused, guest }
}

const sample = (atMs: number, cpus: [nr: number, dsq: number, clock: number, currPid?: number][]): MonitorSample => ({
  atMs,
  cpus: cpus.map(([nrRunning, localDsq, clockNs, pid = 0], cpu) => ({ cpu, nrRunning, localDsq, clockNs, curr: { pid, comm: pid ? 'w' : `swapper/${cpu}`, policy: 0 } })),
})

describe('the monitor API with the monitor off', () => {
  it('answers every call with the reason, in one line, over the channel', async () => {
    await wired(async () => OFF)
    expect(await monitor.status()).toEqual(OFF)
    const lines = await Promise.all(
      [monitor.sample(), bpf.maps(), bpf.map('stats').read(), bpf.globals(), bpf.globals.set('x', 1)].map((p) => p.then(String, (e: Error) => `${e.name}: ${e.message}`)),
    )
    expect(lines).toEqual([
      `KtstrError: monitor.sample(): the monitor is off: ${OFF.reason}`,
      `KtstrError: bpf.maps(): the monitor is off: ${OFF.reason}`,
      `KtstrError: bpf.map().read(): the monitor is off: ${OFF.reason}`,
      `KtstrError: bpf.globals(): the monitor is off: ${OFF.reason}`,
      `KtstrError: bpf.globals.set(): the monitor is off: ${OFF.reason}`,
    ])
    // A run's report then says why it has no samples.
    const mark = await monitor.mark()
    expect(mark).toEqual({ off: `monitor.mark(): the monitor is off: ${OFF.reason}` })
  })

  it('says the monitor has not started yet rather than wait', async () => {
    await wired(async () => undefined)
    await expect(monitor.sample()).rejects.toThrow(/^monitor\.sample\(\): the monitor has not started for this guest yet$/)
  })

  it('outside a ktstr guest, says where it works', async () => {
    await expect(bpf.maps()).rejects.toThrow("bpf.maps() works only in a sched test file run by the ktstr pool (pool: 'ktstr'); the host reads the guest's memory")
  })

  it('refuses a malformed request in one line (the guest is not trusted)', async () => {
    const { refused, guest } = await wired(async () => OFF)
    guest.sendVitest(v8.serialize({ __ktstr__: 'monitor', id: 1, op: 'map-read', map: 7 }))
    await expect.poll(() => refused).toEqual(['guest sent a malformed monitor message: map: expected string, got 7'])
    expect(() => parseMonitorRequest({ __ktstr__: 'monitor', id: 2, op: 'format-disk' })).toThrow(MalformedMessage)
    expect(parseMonitorRequest({ __ktstr__: 'monitor', id: 3, op: 'window', from: 12.5 })).toEqual({ __ktstr__: 'monitor', id: 3, op: 'window', from: 12.5 })
  })
})

describe('monitor matchers over samples', () => {
  const window = (samples: MonitorSample[], stalls: string[] = []): MonitorWindow => ({ hz: 10, samples, stalls })

  it('toHaveNoStalls: the watchdog lines, and an idle CPU whose rq clock stood still with tasks runnable (a busy one is not a stall)', () => {
    expect(
      window([
        sample(0, [
          [1, 0, 10],
          [1, 0, 10],
        ]),
        sample(100, [
          [1, 0, 20],
          [1, 0, 30],
        ]),
      ]),
    ).toHaveNoStalls()
    const stuck = window([
      sample(0, [
        [1, 0, 10],
        [2, 0, 10],
      ]),
      sample(100, [
        [1, 0, 20],
        [2, 0, 10],
      ]),
    ])
    expect(() => expect(stuck).toHaveNoStalls()).toThrow('toHaveNoStalls failed:\n  CPU 1: idle, rq clock stood still at 0.0 s–0.1 s with 2 runnable')
    const busy = window([sample(0, [[1, 0, 10, 40]]), sample(100, [[1, 0, 10, 40]])]) // interrupts off, running pid 40
    expect(busy).toHaveNoStalls()
    const watched = window([], ['stall: pid 231 (spin) runnable 2.4 s on CPU 1 without running; CPU 1 current: pid 0 swapper/1'])
    expect(() => expect(watched).toHaveNoStalls()).toThrow('stall: pid 231 (spin)')
  })

  it('toKeepLocalDsqBelow and toBeBalanced name the CPU and the time', () => {
    const w = window([
      sample(0, [
        [3, 1, 1],
        [0, 0, 1],
      ]),
      sample(500, [
        [4, 9, 2],
        [1, 0, 2],
      ]),
    ])
    expect(w.samples).toKeepLocalDsqBelow(10)
    expect(() => expect(w).toKeepLocalDsqBelow(5)).toThrow('CPU 0 had 9 tasks on its local DSQ at 0.5 s')
    expect(w).toBeBalanced({ maxImbalance: 3 })
    expect(() => expect(w).toBeBalanced({ maxImbalance: 1 })).toThrow('CPU 0 ran 3.50 tasks on average, CPU 1 0.50: imbalance 3.00 > 1')
  })

  it("a report's window, or the monitor's reason when it was off", () => {
    const data = {
      version: 1,
      durationMs: 1,
      topology: 't',
      scheduler: { name: 'eevdf', kind: 'eevdf', attached: false, attachedAtStart: false },
      workers: [],
      cgroupCpusets: {},
      steps: [],
    }
    const on = new Report({ ...data, monitor: window([sample(0, [[1, 0, 1]])]) } as never)
    expect(on).toBeBalanced()
    const off = new Report({ ...data, monitor: { off: OFF.reason } } as never)
    expect(() => off.monitor).toThrow(OFF.reason)
    expect(() => expect(off).toHaveNoStalls()).toThrow(`toHaveNoStalls: ${OFF.reason}`)
  })

  it('counter series: non-decreasing, and steady within a band', () => {
    const pts = (vs: number[]) => vs.map((v, i) => ({ atMs: i * 100, values: { nr_enqueued: v } }))
    expect(seriesOf(['nr_enqueued'], pts([0, 10, 20, 31, 40]))).toBeNonDecreasing()
    expect(seriesOf(['nr_enqueued'], pts([0, 10, 20, 31, 40]))).toBeSteadyWithin({ bandPct: 20 })
    expect(() => expect(seriesOf(['nr_enqueued'], pts([0, 10, 5]))).toBeNonDecreasing()).toThrow('nr_enqueued went down from 10 to 5 at 200 ms')
    expect(() => expect(seriesOf(['nr_enqueued'], pts([0, 10, 20, 90, 100]))).toBeSteadyWithin({ bandPct: 50 })).toThrow(
      'nr_enqueued: 700.0/s at 300 ms is 600% off its median 100.0/s (band ±50%)',
    )
  })
})

describe('failure dump', () => {
  it('with the monitor off: a JSON file, and a summary of at most 8 lines naming it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-dump-'))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const d = collectDump({ cause: 'AssertionError: expected 2 to be 3', monitor: OFF, backend: 'qemu', testFile: '/p/a.sched.test.ts' })
    const file = writeDump(d, dir, 'a.sched.test.ts')
    const lines = dumpSummary(d, file)
    expect(lines).toEqual([`ktstr dump: ${file}`, `monitor off: ${OFF.reason}`, 'vCPU registers: none (the host reads no vCPU registers from the qemu backend)'])
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ version: 1, cause: 'AssertionError: expected 2 to be 3', monitor: OFF, samples: [] })
  })
})

describe('published types', () => {
  const types = path.join(import.meta.dirname, '..', '..', 'dist', 'runtime', 'index.d.ts')
  it.skipIf(!fs.existsSync(types))('a sched file using monitor, bpf and the monitor matchers type-checks against the .d.ts', () => {
    const tsc = path.join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsc')
    const r = spawnSync(tsc, ['-p', path.join(import.meta.dirname, 'typed', 'tsconfig.json')], { encoding: 'utf8' })
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})
