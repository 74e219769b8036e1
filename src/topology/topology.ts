/**
 * The `NnNlNcNt` topology model (ktstr's format): NUMA nodes, LLCs in total, cores per LLC,
 * threads per core. `1n2l4c1t` = one node, two LLCs of four single-threaded cores (8 CPUs).
 * LLCs are spread evenly over the nodes, so `llcs` must be a multiple of `numaNodes`.
 * CPU numbering: LLC-major, then core, then thread, so SMT siblings are adjacent.
 */
import { KtstrError } from '../util/errors.js'

export interface Topology {
  numaNodes: number
  llcs: number
  coresPerLlc: number
  threadsPerCore: number
}

/** Linux CONFIG_NR_CPUS of the guest kernel we build (kconfig fragment). */
export const MAX_GUEST_CPUS = 256
const PATTERN = /^(\d+)n(\d+)l(\d+)c(\d+)t$/

export function parseTopology(text: string): Topology {
  const m = PATTERN.exec(text.trim())
  if (!m) {
    throw new KtstrError(
      `bad topology "${text}": expected NnNlNcNt (NUMA nodes, LLCs, cores per LLC, threads per core), e.g. 1n2l4c1t`,
    )
  }
  const [numaNodes, llcs, coresPerLlc, threadsPerCore] = m.slice(1).map(Number) as [number, number, number, number]
  return validateTopology({ numaNodes, llcs, coresPerLlc, threadsPerCore }, text)
}

export function validateTopology(t: Topology, label = formatTopology(t)): Topology {
  const fields: [keyof Topology, string][] = [
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
  if (t.threadsPerCore > 2) {
    throw new KtstrError(`bad topology "${label}": at most 2 threads per core are supported (x86 SMT)`)
  }
  const cpus = cpuCount(t)
  if (cpus > MAX_GUEST_CPUS) {
    throw new KtstrError(`bad topology "${label}": ${cpus} CPUs exceed the guest kernel's limit of ${MAX_GUEST_CPUS}`)
  }
  return t
}

export const formatTopology = (t: Topology): string =>
  `${t.numaNodes}n${t.llcs}l${t.coresPerLlc}c${t.threadsPerCore}t`

export const cpuCount = (t: Topology): number => t.llcs * t.coresPerLlc * t.threadsPerCore

export const cpusPerLlc = (t: Topology): number => t.coresPerLlc * t.threadsPerCore

export const llcsPerNode = (t: Topology): number => t.llcs / t.numaNodes

/** CPU ids of one LLC. */
export function llcCpus(t: Topology, llc: number): number[] {
  const per = cpusPerLlc(t)
  return Array.from({ length: per }, (_, i) => llc * per + i)
}

/** CPU ids of one NUMA node. */
export function nodeCpus(t: Topology, node: number): number[] {
  const per = llcsPerNode(t) * cpusPerLlc(t)
  return Array.from({ length: per }, (_, i) => node * per + i)
}

/** Linux cpulist notation: [0,1,2,5] → "0-2,5". */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return parts.join(',')
}
