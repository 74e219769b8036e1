/**
 * Topology → QEMU `-smp`/`-numa` arguments.
 *
 * Each LLC is modelled as one socket: QEMU's AMD-flavoured CPU models (TCG `max`, and the nested
 * SVM case, which needs an AMD vendor) share L3 per socket and cannot split a socket by dies,
 * and Intel-flavoured ones share L3 per die (= per socket with dies=1). So sockets = LLCs gives
 * the right `cache/index3/shared_cpu_list` on both (docs/guest-facts.md).
 */
import { formatCpuList } from '../../../runtime/protocol/cpulist.js'
import { cpuCount, nodeCpus, type TopologySpec as Topology } from '../../../runtime/protocol/topology.js'

export function topologyArgs(t: Topology, memoryMib: number): string[] {
  const args = ['-smp', `cpus=${cpuCount(t)},sockets=${t.llcs},dies=1,cores=${t.coresPerLlc},threads=${t.threadsPerCore}`, '-m', `${memoryMib}M`]
  if (t.numaNodes === 1) return args
  for (let node = 0; node < t.numaNodes; node++) {
    args.push('-object', `memory-backend-ram,id=ram-node${node},size=${nodeMemoryMib(memoryMib, t.numaNodes, node)}M`)
    args.push('-numa', `node,nodeid=${node},cpus=${formatCpuList(nodeCpus(t, node))},memdev=ram-node${node}`)
  }
  return args
}

/** Memory split over nodes; the first nodes take the remainder so the sum is exact. */
export function nodeMemoryMib(total: number, nodes: number, node: number): number {
  const base = Math.floor(total / nodes)
  return base + (node < total - base * nodes ? 1 : 0)
}
