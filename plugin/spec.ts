/**
 * The VM a test file gets: the plugin's options, overridden by the file's `@ktstr` docblock.
 */
import fs from 'node:fs'
import path from 'node:path'
import { resolveTopology } from '../runtime/protocol/presets.js'
import { cpuCount } from '../runtime/protocol/topology.js'
import { KtstrError } from '../src/util/errors.js'
import { DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S, DEFAULT_TOPOLOGY } from '../src/vm/defaults.js'
import { parseDocblock } from '../src/vm/spec/docblock.js'
import { finishSpec, parseSpec } from '../src/vm/spec/parse.js'
import type { BackendName, VmSpec } from '../src/vm/spec/request.js'

/** Options of `ktstr()` and `ktstrPool()`: the defaults for every test file. */
export interface KtstrOptions {
  /** A bzImage path or a kernel cache key; default: KTSTR_KERNEL, then the newest cached kernel. */
  kernel?: string
  /** `qemu`, `kvm` or `auto` (default). */
  backend?: BackendName
  /** `NnNlNcNt`, e.g. `1n2l4c1t` (default 1n1l2c1t). */
  topology?: string
  /** Guest memory in MiB (default 1024). */
  memory?: number
  /** A scheduler from the kernel's `scx/` (e.g. `scx_simple`) or a path; default: none (EEVDF). */
  scheduler?: string
  /** Arguments for the scheduler: an array, or one string split like a shell would. */
  schedArgs?: string[] | string
  /** Wall-clock limit per test file in seconds, boot included (default 300). */
  timeout?: number
  /** Host files or directories every guest gets at the same paths (payloads); executables bring their libraries. */
  include?: string[]
  /** The host's stall watchdog: fail a file whose sched_ext task waits this many ms without running (default 2000), or `'off'`. */
  stallMs?: number | 'off'
  /** Samples per second of the host's monitor of each guest (default 10), or `'off'` (no monitor, no stall watchdog). */
  monitorHz?: number | 'off'
  /** Start each file's guest from a snapshot of a booted guest of the same shape (default true); false boots each cold. */
  warm?: boolean
}

/** Validate plugin options; a bad value throws a KtstrError naming the option. */
export function specFromOptions(o: KtstrOptions): VmSpec {
  const { topology, memory, timeout, backend, scheduler, kernel, include } = o
  return parseSpec(
    { topology, memory, timeout, backend, scheduler, kernel, include, 'sched-args': o.schedArgs, 'stall-ms': o.stallMs, 'monitor-hz': o.monitorHz, warm: o.warm },
    'option',
  )
}

/**
 * Layer a file's docblock over the defaults. A docblock that picks another scheduler drops the
 * default scheduler's arguments; `sched-args` alone applies to the default scheduler.
 */
export function applyDocblock(defaults: VmSpec, doc: VmSpec): VmSpec {
  const { scheduler, schedArgs, include, ...rest } = doc
  const spec: VmSpec = { ...defaults, ...rest }
  if (include) spec.include = [...(defaults.include ?? []), ...include]
  if (scheduler !== undefined && scheduler !== defaults.scheduler) {
    delete spec.schedArgs
    spec.scheduler = scheduler
  }
  if (schedArgs) spec.schedArgs = schedArgs
  return finishSpec(spec, 'docblock')
}

/**
 * The spec for one test file; errors name the file. With `fixedTopology` (the gauntlet) the
 * defaults' topology and memory win over the file's docblock.
 */
export function fileSpec(defaults: VmSpec, filepath: string, fixedTopology = false): VmSpec {
  let source: string
  try {
    source = fs.readFileSync(filepath, 'utf8')
  } catch (e) {
    throw new KtstrError(`cannot read ${filepath}: ${(e as Error).message}`)
  }
  try {
    const spec = applyDocblock(defaults, parseDocblock(source, path.dirname(filepath)))
    if (fixedTopology) {
      if (defaults.topology !== undefined) spec.topology = defaults.topology
      if (defaults.memoryMib !== undefined) spec.memoryMib = defaults.memoryMib
    }
    return spec
  } catch (e) {
    if (e instanceof KtstrError) throw new KtstrError(`${path.basename(filepath)}: ${e.message}`)
    throw e
  }
}

export function sameSpec(a: VmSpec, b: VmSpec): boolean {
  return specKey(a) === specKey(b)
}

const specKey = (s: VmSpec) =>
  JSON.stringify([s.kernel, s.backend, s.topology, s.memoryMib, s.scheduler, s.schedArgs, s.timeoutS, s.include, s.disks, s.stallMs, s.monitorHz, s.warm])

/** What one guest of this spec takes from the host (vCPUs and guest RAM). */
export function guestSize(spec: VmSpec): { cpus: number; memoryMib: number } {
  return {
    cpus: cpuCount(resolveTopology(spec.topology ?? DEFAULT_TOPOLOGY)),
    memoryMib: spec.memoryMib ?? DEFAULT_MEMORY_MIB,
  }
}

export const fileTimeoutS = (spec: VmSpec): number => spec.timeoutS ?? DEFAULT_TIMEOUT_S
