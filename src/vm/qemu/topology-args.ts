/**
 * Topology → QEMU `-smp`/`-numa` arguments.
 *
 * Each LLC is modelled as one socket: QEMU's AMD-flavoured CPU models (TCG `max`, and the nested
 * SVM case, which needs an AMD vendor) share L3 per socket and cannot split a socket by dies,
 * and Intel-flavoured ones share L3 per die (= per socket with dies=1). So sockets = LLCs gives
 * the right `cache/index3/shared_cpu_list` on both (docs/guest-facts.md).
 *
 * Guest RAM is one memory backend per NUMA node: the machine's memory-backend with one node, each
 * node's memdev with more. With `ramFiles` it is a `memory-backend-file` shared with the host
 * (ram-backing.ts), for the monitor; without, anonymous `memory-backend-ram` (the monitor is off).
 */
import { formatCpuList } from '../../../runtime/protocol/cpulist.js'
import { cpuCount, nodeCpus, type TopologySpec as Topology } from '../../../runtime/protocol/topology.js'
import { qemuOptionValue } from './option-value.js'

/** The id of node `n`'s memory backend; with one node, the value of `-machine memory-backend=`. */
export const ramBackendId = (node: number): string => `ram-node${node}`

/** `ramFiles`: each node's backing file, in node order; undefined for anonymous RAM. */
export function topologyArgs(t: Topology, memoryMib: number, ramFiles?: readonly string[]): string[] {
  if (ramFiles && ramFiles.length !== t.numaNodes) throw new RangeError(`${t.numaNodes} NUMA nodes need ${t.numaNodes} RAM files, got ${ramFiles.length}`)
  const args = ['-smp', `cpus=${cpuCount(t)},sockets=${t.llcs},dies=1,cores=${t.coresPerLlc},threads=${t.threadsPerCore}`, '-m', `${memoryMib}M`]
  for (let node = 0; node < t.numaNodes; node++) {
    const size = nodeMemoryMib(memoryMib, t.numaNodes, node)
    const backend = ramFiles
      ? `memory-backend-file,id=${ramBackendId(node)},size=${size}M,mem-path=${qemuOptionValue(ramFiles[node]!)},share=on`
      : `memory-backend-ram,id=${ramBackendId(node)},size=${size}M`
    args.push('-object', backend)
    if (t.numaNodes > 1) args.push('-numa', `node,nodeid=${node},cpus=${formatCpuList(nodeCpus(t, node))},memdev=${ramBackendId(node)}`)
  }
  return args
}

/** Memory split over nodes; the first nodes take the remainder so the sum is exact. */
export function nodeMemoryMib(total: number, nodes: number, node: number): number {
  const base = Math.floor(total / nodes)
  return base + (node < total - base * nodes ? 1 : 0)
}
