/**
 * The `NnNlNcNt` topology model (ktstr's): NUMA nodes, LLCs in total, cores per LLC, threads per
 * core. `1n2l4c1t` = one node, two LLCs of four single-threaded cores (8 CPUs). LLCs are spread
 * evenly over nodes, so `llcs` must be a multiple of `numaNodes`. Shared by the host (the VM
 * backends lay out their vCPUs with it) and the guest's test API. CPU numbering: LLC-major, then
 * core, then thread, so SMT siblings are adjacent.
 */
import { KtstrError } from './errors.js'

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
    throw new KtstrError(`bad topology "${text}": expected NnNlNcNt (NUMA nodes, LLCs, cores per LLC, threads per core), e.g. 1n2l4c1t, or a preset name such as tiny-2llc`)
  }
  const [numaNodes, llcs, coresPerLlc, threadsPerCore] = m.slice(1).map(Number) as [number, number, number, number]
  return validateTopology({ numaNodes, llcs, coresPerLlc, threadsPerCore }, text)
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
    throw new KtstrError(`bad topology "${label}": ${t.llcs} LLCs cannot be spread evenly over ${t.numaNodes} NUMA nodes; use a multiple of ${t.numaNodes} LLCs`)
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

export const cpusPerLlc = (t: TopologySpec): number => t.coresPerLlc * t.threadsPerCore
export const llcsPerNode = (t: TopologySpec): number => t.llcs / t.numaNodes

/** CPU ids of one LLC. */
export function llcCpus(t: TopologySpec, llc: number): number[] {
  const per = cpusPerLlc(t)
  return Array.from({ length: per }, (_, i) => llc * per + i)
}

/** CPU ids of one NUMA node. */
export function nodeCpus(t: TopologySpec, node: number): number[] {
  const per = llcsPerNode(t) * cpusPerLlc(t)
  return Array.from({ length: per }, (_, i) => node * per + i)
}
