/**
 * The monitor/bpf test API on the wire: the guest asks, the host reads (or writes) guest memory and
 * answers. Requests and replies are ktstr envelopes inside Vitest frames (vitest-envelope.ts), so they
 * are v8-serialized and bigints (u64 counters) cross unchanged. The host checks every request
 * (guest-schema.ts, parseMonitorRequest); its replies carry a result or one line saying why not.
 */
import { ENVELOPE_MARK } from './vitest-envelope.js'

/** A value decoded through BTF: numbers, bigints for 64-bit integers, strings for char arrays and enums. */
export type BpfValue = number | bigint | boolean | string | Uint8Array | BpfValue[] | { [member: string]: BpfValue }

/** What the test asks the host; `id` pairs the reply. */
export type MonitorOp =
  | { op: 'status' }
  /** The newest per-CPU sample. */
  | { op: 'sample' }
  /** The host's monitor clock now (ms), to ask for the samples since later. */
  | { op: 'mark' }
  /** Samples taken from `from` (a mark) to now. */
  | { op: 'window'; from: number }
  | { op: 'maps' }
  | { op: 'map-read'; map: string }
  | { op: 'map-write'; map: string; key: unknown; value: unknown }
  /** The attached scheduler's `.bss`/`.data`/`.rodata` globals. */
  | { op: 'globals' }
  | { op: 'global-set'; name: string; value: unknown }

export type MonitorRequest = { [ENVELOPE_MARK]: 'monitor'; id: number } & MonitorOp
export type MonitorReply = { [ENVELOPE_MARK]: 'monitor-reply'; id: number; ok: true; value: unknown } | { [ENVELOPE_MARK]: 'monitor-reply'; id: number; ok: false; message: string }

/**
 * The attached sched_ext scheduler, as the host read it from its struct_ops map: `attached` with
 * the ops' name (`qmap`), or `none` (EEVDF runs).
 */
export type ScxState = { state: 'attached'; ops: string } | { state: 'none' }

/** The monitor's state for this guest: on with its rate (and the attached scheduler), or off with the one-line reason. */
export type MonitorStatus = { on: true; hz: number; scx?: ScxState } | { on: false; reason: string }

/** One CPU at one instant, as the host read it from the guest kernel. */
export interface CpuSample {
  cpu: number
  /** rq->nr_running: every class. */
  nrRunning: number
  /** rq->scx.nr_running (absent without sched_ext). */
  scxNrRunning?: number
  /** Tasks queued on the CPU's local DSQ (rq->scx.local_dsq.nr). */
  localDsq?: number
  /** rq->clock (ns). */
  clockNs?: number
  /** The task running on it. */
  curr?: { pid: number; comm: string; policy: number }
  /** What could not be read (a torn pointer, RAM gone). */
  partial?: string
}

/** All CPUs at one instant. `atMs` is the host monitor's clock: ms since the host started the guest. */
export interface MonitorSample {
  atMs: number
  cpus: CpuSample[]
  /** The attached sched_ext scheduler, read by the host about once a second. */
  scx?: ScxState
  /** sched_ext's event counters (kernel 6.15+), summed over the CPUs. */
  events?: Record<string, number>
}

/** Samples over a window, and why some may be missing. */
export interface MonitorWindow {
  hz: number
  samples: MonitorSample[]
  /** Stalls the host's watchdog saw in the window, one line each. */
  stalls: string[]
}

export interface BpfMapInfo {
  name: string
  /** `array`, `percpu_array`, `hash`, … */
  type: string
  keySize: number
  valueSize: number
  maxEntries: number
  /** The process holding it (a scheduler's loader): `scx_qmap[231]`. */
  owner?: string
}

/** A map's contents: ARRAY by index (PERCPU_ARRAY: one value per CPU), HASH by key. */
export interface BpfMapContents {
  map: BpfMapInfo
  entries: { key: BpfValue; value: BpfValue }[]
}

/** Where the guest worker publishes the monitor bridge for runtime/api (loaded through Vite's module runner). */
export const MONITOR_KEY = Symbol.for('ktstr.monitor')

export interface MonitorBridge {
  call(op: MonitorOp): Promise<unknown>
}
