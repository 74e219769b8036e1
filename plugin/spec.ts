/**
 * The VM a test file gets: the plugin's options, overridden by the file's `@ktstr` docblock.
 */
import fs from 'node:fs'
import path from 'node:path'
import { resolveTopology } from '../runtime/protocol/presets.js'
import { cpuCount } from '../runtime/protocol/topology.js'
import { KtstrError } from '../src/util/errors.js'
import { DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S, DEFAULT_TOPOLOGY } from '../src/vm/defaults.js'
import type { BackendName, VmRequest } from '../src/vm/session.js'
import { parseDocblock, setSpecValue, type KtstrDocblock } from './docblock.js'
import { parseDiskSpec } from '../src/vm/disk.js'

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
}

export type VmSpec = Pick<VmRequest, 'kernel' | 'backend' | 'topology' | 'memoryMib' | 'scheduler' | 'schedArgs' | 'timeoutS' | 'include' | 'disks'>

/** Validate plugin options; a bad value throws a KtstrError naming the option. */
export function specFromOptions(o: KtstrOptions): VmSpec {
  const doc: KtstrDocblock = {}
  const src = 'ktstr() option'
  if (o.topology !== undefined) setSpecValue(doc, 'topology', o.topology, src)
  if (o.memory !== undefined) setSpecValue(doc, 'memory', String(o.memory), src)
  if (o.timeout !== undefined) setSpecValue(doc, 'timeout', String(o.timeout), src)
  if (o.backend !== undefined) setSpecValue(doc, 'backend', o.backend, src)
  if (o.scheduler !== undefined) setSpecValue(doc, 'scheduler', o.scheduler, src)
  if (o.kernel !== undefined) setSpecValue(doc, 'kernel', o.kernel, src)
  if (o.include !== undefined) {
    if (!Array.isArray(o.include) || o.include.some((p) => typeof p !== 'string' || p === '')) {
      throw new KtstrError('bad ktstr() option include: expected an array of paths')
    }
    doc.include = [...o.include]
  }
  if (typeof o.schedArgs === 'string') setSpecValue(doc, 'sched-args', o.schedArgs, src)
  else if (o.schedArgs !== undefined) {
    if (!Array.isArray(o.schedArgs) || o.schedArgs.some((a) => typeof a !== 'string')) {
      throw new KtstrError('bad ktstr() option schedArgs: expected an array of strings or one string')
    }
    doc.schedArgs = [...o.schedArgs]
  }
  const spec = applyDocblock({}, doc, process.cwd())
  if (spec.kernel && isRelativePath(spec.kernel)) spec.kernel = path.resolve(spec.kernel)
  return spec
}

/**
 * Layer a docblock over the defaults. A docblock that picks another scheduler drops the default
 * scheduler's arguments; `sched-args` alone applies to the default scheduler.
 */
export function applyDocblock(defaults: VmSpec, doc: KtstrDocblock, fileDir: string): VmSpec {
  const spec: VmSpec = { ...defaults }
  if (doc.topology !== undefined) spec.topology = doc.topology
  if (doc.memoryMib !== undefined) spec.memoryMib = doc.memoryMib
  if (doc.timeoutS !== undefined) spec.timeoutS = doc.timeoutS
  if (doc.backend !== undefined) spec.backend = doc.backend
  if (doc.kernel !== undefined) spec.kernel = isRelativePath(doc.kernel) ? path.resolve(fileDir, doc.kernel) : doc.kernel
  if (doc.disk !== undefined) spec.disks = [parseDiskSpec(doc.disk, fileDir)]
  if (doc.include !== undefined) spec.include = [...(defaults.include ?? []), ...doc.include.map((p) => path.resolve(fileDir, p))]
  if (doc.scheduler !== undefined && doc.scheduler !== defaults.scheduler) {
    delete spec.schedArgs
    if (doc.scheduler === null) delete spec.scheduler
    else spec.scheduler = doc.scheduler
  }
  if (doc.schedArgs !== undefined) spec.schedArgs = doc.schedArgs
  if (spec.schedArgs && !spec.scheduler) {
    throw new KtstrError('sched-args given without a scheduler; add scheduler=<name> to the @ktstr docblock')
  }
  return spec
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
    const spec = applyDocblock(defaults, parseDocblock(source), path.dirname(filepath))
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
  JSON.stringify([s.kernel, s.backend, s.topology, s.memoryMib, s.scheduler, s.schedArgs, s.timeoutS, s.include, s.disks])

/** What one guest of this spec takes from the host (vCPUs and guest RAM). */
export function guestSize(spec: VmSpec): { cpus: number; memoryMib: number } {
  return {
    cpus: cpuCount(resolveTopology(spec.topology ?? DEFAULT_TOPOLOGY)),
    memoryMib: spec.memoryMib ?? DEFAULT_MEMORY_MIB,
  }
}

export const fileTimeoutS = (spec: VmSpec): number => spec.timeoutS ?? DEFAULT_TIMEOUT_S

function isRelativePath(p: string): boolean {
  return p.startsWith('./') || p.startsWith('../') || p === '.' || p === '..'
}
