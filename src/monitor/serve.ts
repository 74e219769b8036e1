/**
 * The host end of the guest's monitor/bpf API (runtime/protocol/monitor.ts): answers each request
 * from the Monitor's samples and from guest memory through src/monitor/bpf. The guest only asks;
 * every answer is a value or one line saying why not, never a hang.
 */
import type * as wire from '../../runtime/protocol/monitor.js'
import { ENVELOPE_MARK } from '../../runtime/protocol/vitest-envelope.js'
import { describeError, KtstrError } from '../util/errors.js'
import { GuestMemoryError } from '../vm/memory/guest-memory.js'
import type { MonitorStatus } from './attach.js'
import { findMap, listMaps, readMap, setGlobal, writeArrayElem } from './bpf/index.js'
import { mapToWire } from './dump-read.js'
import { hostNow, type Monitor, type MonitorSample } from './monitor.js'
import { bpfGlobals } from './serve-globals.js'

export class MonitorServer {
  /** Host time the server started: sample times are ms since then. */
  readonly origin = hostNow()

  constructor(private readonly status: () => Promise<MonitorStatus | undefined>) {}

  async serve(req: wire.MonitorRequest): Promise<wire.MonitorReply> {
    try {
      return { [ENVELOPE_MARK]: 'monitor-reply', id: req.id, ok: true, value: await this.answer(req) }
    } catch (e) {
      const message = e instanceof GuestMemoryError ? `the guest's memory is gone (${e.message})` : describeError(e)
      return { [ENVELOPE_MARK]: 'monitor-reply', id: req.id, ok: false, message }
    }
  }

  private async monitor(what: string): Promise<Monitor> {
    const s = await this.status()
    if (!s) throw new KtstrError(`${what}: the monitor has not started for this guest yet`)
    if (!s.on) throw new KtstrError(`${what}: the monitor is off: ${s.reason}`)
    return s.monitor
  }

  private async answer(req: wire.MonitorRequest): Promise<unknown> {
    switch (req.op) {
      case 'status': {
        const s = await this.status()
        if (!s) return { on: false, reason: 'the monitor has not started for this guest yet' } satisfies wire.MonitorStatus
        if (!s.on) return { on: false, reason: s.reason }
        const scx = s.monitor.scxState(true)
        return { on: true, hz: s.monitor.hz, ...(scx && { scx }) } satisfies wire.MonitorStatus
      }
      case 'sample': {
        const m = await this.monitor('monitor.sample()')
        return this.toWire(m.last() ?? m.sample())
      }
      case 'mark':
        await this.monitor('monitor.mark()')
        return hostNow()
      case 'window': {
        const m = await this.monitor('the run window')
        const stalls = m.stall ? [m.stall.message] : []
        return { hz: m.hz, samples: m.samplesBetween(req.from, hostNow()).map((s) => this.toWire(s)), stalls } satisfies wire.MonitorWindow
      }
      case 'maps': {
        const m = await this.monitor('bpf.maps()')
        return listMaps(m.view).map(mapToWire)
      }
      case 'map-read': {
        const m = await this.monitor('bpf.map().read()')
        const contents = readMap(m.view, findMap(listMaps(m.view), req.map))
        return { map: mapToWire(contents.map), entries: contents.entries } as wire.BpfMapContents
      }
      case 'map-write': {
        const m = await this.monitor('bpf.map().write()')
        const map = findMap(listMaps(m.view), req.map)
        if (typeof req.key !== 'number' || !Number.isInteger(req.key)) {
          throw new KtstrError(`bpf.map('${req.map}').write(key, value): the key of a ${map.type} map is an element index (an integer), got ${typeof req.key}`)
        }
        writeArrayElem(m.view, map, req.key, req.value)
        return undefined
      }
      case 'globals':
        return bpfGlobals((await this.monitor('bpf.globals()')).view)
      case 'global-set':
        setGlobal((await this.monitor('bpf.globals.set()')).view, req.name, req.value)
        return undefined
    }
  }

  /** A sample as the guest sees it: times relative to the server's start, no task addresses. */
  toWire(s: MonitorSample): wire.MonitorSample {
    return {
      atMs: Math.round(s.t - this.origin),
      cpus: s.cpus.map((c) => ({
        cpu: c.cpu,
        nrRunning: c.nrRunning,
        scxNrRunning: c.scxNrRunning,
        localDsq: c.localDsq,
        clockNs: c.clockNs,
        ...(c.curr && { curr: c.curr }),
        ...(c.partial && { partial: c.partial }),
      })),
      ...(s.scx && { scx: s.scx }),
    }
  }
}
