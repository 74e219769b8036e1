/**
 * What the host knows of a guest when its test file fails: the monitor's last per-CPU samples, the
 * stall it saw, the attached scheduler's maps and globals decoded (while guest RAM is still there),
 * and vCPU registers where the backend keeps them. Read by the host alone, so a wedged guest (a
 * test spinning in its event loop until the file times out) still gets its per-CPU state.
 */
import type * as wire from '../../runtime/protocol/monitor.js'
import { describeError } from '../util/errors.js'
import { probeKvm } from '../vm/accel.js'
import type { MonitorStatus } from './attach.js'
import { listMaps } from './bpf/maps.js'
import { READABLE_TYPES, readMap } from './bpf/read.js'
import type { MonitorSample } from './monitor.js'
import { mapToWire } from './serve.js'
import { bpfGlobals } from './serve-globals.js'

/** Samples kept in a dump (the newest). */
const DUMP_SAMPLES = 20
/** Elements read per map. */
const DUMP_MAP_MAX = 1024

export interface FailureDump {
  version: 1
  /** One line: what failed (the assertion's message, `timeout`, the stall line, …). */
  cause: string
  /** ISO time on the host when the dump was taken. */
  takenAt: string
  testFile?: string
  monitor: { on: true; hz: number; notes: readonly string[] } | { on: false; reason: string }
  /** The newest samples, oldest first; `atMs` relative to the newest's host time (≤ 0). */
  samples: (Omit<wire.MonitorSample, 'atMs'> & { atMs: number; runnable?: unknown })[]
  stall?: string
  /** The scheduler's BPF maps, decoded; or why they were not read. */
  maps: { info: wire.BpfMapInfo; entries?: unknown[]; truncated?: boolean; error?: string }[] | { notRead: string }
  globals: unknown
  /** Per-vCPU registers, or why there are none. */
  vcpus: Record<string, unknown>[] | { none: string }
}

export interface DumpInput {
  cause: string
  testFile?: string
  monitor: MonitorStatus | undefined
  /** The backend's vCPU registers when it keeps them (the kvm VMM). */
  registers?: () => Record<string, unknown>[] | undefined
  backend: string
}

export function collectDump(input: DumpInput): FailureDump {
  const status = input.monitor
  const dump: FailureDump = {
    version: 1,
    cause: input.cause.split('\n')[0]!.slice(0, 500),
    takenAt: new Date().toISOString(),
    ...(input.testFile && { testFile: input.testFile }),
    monitor: !status
      ? { on: false, reason: 'the monitor had not started' }
      : status.on
        ? { on: true, hz: status.monitor.hz, notes: status.monitor.notes }
        : { on: false, reason: status.reason },
    samples: [],
    maps: { notRead: 'the monitor is off' },
    globals: undefined,
    vcpus: { none: `the host reads no vCPU registers from the ${backendName(input.backend)} backend` },
  }
  const regs = guard(() => input.registers?.())
  if (Array.isArray(regs)) dump.vcpus = regs
  if (!status?.on) return dump
  const m = status.monitor
  const samples = m.samplesBetween().slice(-DUMP_SAMPLES)
  const newest = samples.at(-1)?.t ?? 0
  dump.samples = samples.map((s: MonitorSample) => ({
    atMs: Math.round(s.t - newest),
    cpus: s.cpus.map(({ runnable, ...c }) => ({ ...c, curr: c.curr, ...(runnable.length && { runnable: runnable.map(({ addr: _, ...t }) => t) }) })),
  }))
  if (m.stall) dump.stall = m.stall.message
  if (m.view.mem.isReleased) {
    dump.maps = { notRead: 'the VM was gone before the dump (guest RAM released)' }
    dump.globals = { notRead: 'the VM was gone before the dump' }
    return dump
  }
  const maps = guard(() => listMaps(m.view))
  if (!Array.isArray(maps)) dump.maps = { notRead: maps.error }
  else {
    dump.maps = maps.map((map) => {
      const info = mapToWire(map)
      if (!READABLE_TYPES.includes(map.type)) return { info }
      const c = guard(() => readMap(m.view, map, { max: DUMP_MAP_MAX }))
      return 'error' in c ? { info, error: c.error } : { info, entries: c.entries, truncated: c.truncated }
    })
  }
  dump.globals = guard(() => bpfGlobals(m.view))
  return dump
}

/** At most 8 lines for the failure message; `file` is where the whole dump is. */
export function dumpSummary(d: FailureDump, file: string): string[] {
  const lines = [`ktstr dump: ${file}`]
  if (!d.monitor.on) lines.push(`monitor off: ${d.monitor.reason}`)
  const s = d.samples.at(-1)
  if (s) {
    const cpu = (c: (typeof s.cpus)[number]) => `CPU ${c.cpu}: nr_running ${c.nrRunning}, local DSQ ${c.localDsq ?? '?'}, curr ${c.curr ? `${c.curr.pid} ${c.curr.comm}` : '?'}`
    const shown = s.cpus.slice(0, 4).map(cpu)
    lines.push(`last sample (${d.samples.length} kept): ${shown.join('; ')}${s.cpus.length > 4 ? `; … ${s.cpus.length - 4} more CPUs` : ''}`)
  }
  if (d.stall) lines.push(`stall: ${d.stall}`)
  if (Array.isArray(d.maps)) {
    const names = d.maps.map((m) => `${m.info.name} (${m.info.type})`)
    lines.push(`BPF maps: ${names.length ? names.slice(0, 10).join(', ') + (names.length > 10 ? `, … ${names.length - 10} more` : '') : 'none'}`)
  } else if (d.monitor.on) lines.push(`BPF maps not read: ${d.maps.notRead}`)
  const g = globalsLine(d.globals)
  if (g) lines.push(g)
  lines.push(Array.isArray(d.vcpus) ? `vCPU registers: ${d.vcpus.length} vCPUs` : `vCPU registers: none (${d.vcpus.none})`)
  return lines.slice(0, 8).map((l) => (l.length > 300 ? `${l.slice(0, 299)}…` : l))
}

function globalsLine(g: unknown): string | undefined {
  if (!g || typeof g !== 'object') return undefined
  if ('error' in g) return `BPF globals not read: ${String((g as { error: unknown }).error)}`
  if ('notRead' in g) return undefined
  const scalars: string[] = []
  for (const [section, vars] of Object.entries(g as Record<string, unknown>)) {
    if (!vars || typeof vars !== 'object') continue
    for (const [k, v] of Object.entries(vars)) if (typeof v === 'number' || typeof v === 'bigint') scalars.push(`${section}.${k}=${v}`)
  }
  return scalars.length ? `globals: ${scalars.slice(0, 12).join(' ')}${scalars.length > 12 ? ' …' : ''}` : undefined
}

const backendName = (b: string) => (b === 'auto' ? (probeKvm().usable ? 'kvm' : 'qemu') : b)

/** `f()`, or its one-line error: a dump takes what it can get. */
function guard<T>(f: () => T): T | { error: string } {
  try {
    return f()
  } catch (e) {
    return { error: describeError(e) }
  }
}
