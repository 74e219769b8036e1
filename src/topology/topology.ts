/**
 * The `NnNlNcNt` topology model on the host. The model itself (parsing, validation, presets,
 * cpulists) is shared with the guest's test API through runtime/protocol; this adds the CPU
 * numbering helpers the VM backends need. CPU numbering: LLC-major, then core, then thread, so
 * SMT siblings are adjacent.
 */
import type { TopologySpec } from '../../runtime/protocol/topology.js'

export {
  MAX_GUEST_CPUS,
  cpuCount,
  formatTopology,
  parseTopology,
  resolveTopology,
  validateTopology,
} from '../../runtime/protocol/topology.js'
export { formatCpuList, parseCpuList } from '../../runtime/protocol/cpulist.js'

export type Topology = TopologySpec

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
