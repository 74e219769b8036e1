/**
 * The `NnNlNcNt` topology model (ktstr's): NUMA nodes, LLCs in total, cores per LLC, threads per
 * core. `1n2l4c1t` = one node, two LLCs of four single-threaded cores (8 CPUs). LLCs are spread
 * evenly over nodes, so `llcs` must be a multiple of `numaNodes`. CPU numbering matches the host's
 * VM layout (src/topology/topology.ts): LLC-major, then core, then thread, so SMT siblings are adjacent.
 */
import { KtstrError } from './errors.js'
import { PRESETS } from './presets.js'

export interface TopologySpec {
  numaNodes: number
  llcs: number
  coresPerLlc: number
  threadsPerCore: number
}

/** The guest kernel's CONFIG_NR_CPUS. */
export const MAX_GUEST_CPUS = 256
const PATTERN = /^(\d+)n(\d+)l(\d+)c(\d+)t$/

export function parseTopology(text: string): TopologySpec {
  const m = PATTERN.exec(text.trim())
  if (!m) {
    throw new KtstrError(
      `bad topology "${text}": expected NnNlNcNt (NUMA nodes, LLCs, cores per LLC, threads per core), e.g. 1n2l4c1t, or a preset name such as tiny-2llc`,
    )
  }
  const [numaNodes, llcs, coresPerLlc, threadsPerCore] = m.slice(1).map(Number) as [number, number, number, number]
  return validateTopology({ numaNodes, llcs, coresPerLlc, threadsPerCore }, text)
}

/** A preset name (`smt-2llc`) or an `NnNlNcNt` string. */
export function resolveTopology(nameOrSpec: string): TopologySpec {
  const preset = PRESETS.find((p) => p.name === nameOrSpec.trim())
  return preset ? { ...preset.topology } : parseTopology(nameOrSpec)
}

export function validateTopology(t: TopologySpec, label = formatTopology(t)): TopologySpec {
  const fields: [keyof TopologySpec, string][] = [
    ['numaNodes', 'NUMA nodes'],
    ['llcs', 'LLCs'],
    ['coresPerLlc', 'cores per LLC'],
    ['threadsPerCore', 'threads per core'],
  ]
  for (const [k, what] of fields) {
    if (!Number.isInteger(t[k]) || t[k] < 1) throw new KtstrError(`bad topology "${label}": ${what} must be at least 1`)
  }
  if (t.llcs % t.numaNodes !== 0) {
    throw new KtstrError(
      `bad topology "${label}": ${t.llcs} LLCs cannot be spread evenly over ${t.numaNodes} NUMA nodes; use a multiple of ${t.numaNodes} LLCs`,
    )
  }
  if (t.threadsPerCore > 2) throw new KtstrError(`bad topology "${label}": at most 2 threads per core are supported (x86 SMT)`)
  const cpus = cpuCount(t)
  if (cpus > MAX_GUEST_CPUS) {
    throw new KtstrError(`bad topology "${label}": ${cpus} CPUs exceed the guest kernel's limit of ${MAX_GUEST_CPUS}`)
  }
  return t
}

export const formatTopology = (t: TopologySpec): string => `${t.numaNodes}n${t.llcs}l${t.coresPerLlc}c${t.threadsPerCore}t`
export const cpuCount = (t: TopologySpec): number => t.llcs * t.coresPerLlc * t.threadsPerCore
