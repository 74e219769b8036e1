/**
 * What the host knows of a guest when its test file fails: the monitor's last per-CPU samples, the
 * stall it saw, the attached scheduler (sched_ext ops) with its maps and globals decoded (while guest
 * RAM is still there, or as the Monitor kept them just before the VM was killed), and the vCPU
 * registers where the backend gives them (the kvm VMM; the Monitor reads them about once a second).
 * Read by the host alone, so a wedged guest (a test spinning in its event loop until the file times
 * out) still gets its per-CPU state.
 */
import type * as wire from '../../runtime/protocol/monitor.js'
import { probeKvm } from '../vm/accel.js'
import type { VcpuRegisters } from '../vm/vm-process.js'
import type { MonitorStatus } from './attach.js'
import { type DumpMaps, readSchedulerState } from './dump-read.js'
import { hostNow, type MonitorSample } from './monitor.js'
import { describeScx, type ScxState } from './scx-state.js'

/** Samples kept in a dump (the newest). */
const DUMP_SAMPLES = 20

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
  /** The attached sched_ext scheduler (from its struct_ops map), as last read. */
  scx?: ScxState
  /** The scheduler's BPF maps, decoded; or why they were not read. */
  maps: DumpMaps
  globals: unknown
  /** Host ms before `takenAt` the maps and globals were read (before the VM was killed), when not read live. */
  mapsReadBeforeMs?: number
  /** Per-vCPU registers as the Monitor last read them (about once a second), or why there are none. */
  vcpus: VcpuRegisters[] | { none: string }
  /** Host ms before `takenAt` the registers were read. */
  vcpusReadBeforeMs?: number
}

export interface DumpInput {
  cause: string
  testFile?: string
  monitor: MonitorStatus | undefined
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
  if (!status?.on) {
    if (backendName(input.backend) === 'kvm') dump.vcpus = { none: 'the monitor, which reads them, is off' }
    return dump
  }
  const m = status.monitor
  if (m.readsRegisters) {
    const regs = m.registers
    if (!regs) dump.vcpus = { none: 'no read of them had answered yet' }
    else Object.assign(dump, { vcpus: regs.vcpus, vcpusReadBeforeMs: Math.max(0, Math.round(hostNow() - regs.t)) })
  }
  const samples = m.samplesBetween().slice(-DUMP_SAMPLES)
  const newest = samples.at(-1)?.t ?? 0
  dump.samples = samples.map((s: MonitorSample) => ({
    atMs: Math.round(s.t - newest),
    cpus: s.cpus.map(({ runnable, ...c }) => ({ ...c, curr: c.curr, ...(runnable.length && { runnable: runnable.map(({ addr: _, ...t }) => t) }) })),
  }))
  if (m.stall) dump.stall = m.stall.message
  const scx = m.scxState(true)
  if (scx) dump.scx = scx
  if (!m.view.mem.isReleased) return Object.assign(dump, readSchedulerState(m.view))
  // The VM is gone: what the Monitor kept before the host killed it (a stall, a timeout) or at the scheduler's exit.
  const kept = m.preserved
  if (!kept) {
    dump.maps = { notRead: 'the VM was gone before the dump (guest RAM released)' }
    dump.globals = { notRead: 'the VM was gone before the dump' }
    return dump
  }
  return Object.assign(dump, { maps: kept.maps, globals: kept.globals, mapsReadBeforeMs: Math.max(0, Math.round(hostNow() - kept.t)) })
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
  if (d.scx) lines.push(`sched_ext: ${describeScx(d.scx)}`)
  if (d.stall) lines.push(d.stall)
  if (Array.isArray(d.maps)) {
    const names = d.maps.map((m) => `${m.info.name} (${m.info.type})`)
    lines.push(`BPF maps: ${names.length ? names.slice(0, 10).join(', ') + (names.length > 10 ? `, … ${names.length - 10} more` : '') : 'none'}`)
  } else if (d.monitor.on) lines.push(`BPF maps not read: ${d.maps.notRead}`)
  const g = globalsLine(d.globals)
  if (g) lines.push(g)
  lines.push(vcpusLine(d))
  return lines.slice(0, 8).map((l) => (l.length > 300 ? `${l.slice(0, 299)}…` : l))
}

function vcpusLine(d: FailureDump): string {
  if (!Array.isArray(d.vcpus)) return `vCPU registers: none (${d.vcpus.none})`
  const one = (v: VcpuRegisters) => (v.regs ? `vCPU ${v.cpu}: rip ${v.regs.rip} rsp ${v.regs.rsp}` : `vCPU ${v.cpu}: no answer`)
  return `${d.vcpus.map(one).join('; ')} (read ${((d.vcpusReadBeforeMs ?? 0) / 1000).toFixed(1)} s before the dump)`
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
