/**
 * SRAT (ACPI 6.5 §5.2.16): each CPU's proximity domain (= its NUMA node, by APIC id) and each
 * node's memory ranges. Nodes hold whole LLCs and an even share of RAM (memory/layout.ts).
 */
import type { TopologySpec as Topology } from '../../../../../../runtime/protocol/topology.js'
import { type MemoryLayout, nodeMemoryRanges } from '../../../memory/layout.js'
import { cpuPlaces, MAX_XAPIC_ID } from '../topology-ids.js'
import { sdt } from './sdt.js'

export const SRAT_REVISION = 3
export const SRAT_TYPE = { CPU_AFFINITY: 0, MEMORY_AFFINITY: 1, X2APIC_CPU_AFFINITY: 2 } as const
const ENABLED = 1

export function buildSrat(t: Topology, layout: MemoryLayout): Uint8Array {
  const nodes = nodeMemoryRanges(layout, t.numaNodes)
  return sdt('SRAT', SRAT_REVISION, (w) => {
    w.u32(1).u64(0) // reserved: 1 for backward compatibility, then 8 reserved bytes
    for (const c of cpuPlaces(t)) {
      if (c.apicId <= MAX_XAPIC_ID) {
        // §5.2.16.1: domain bits 7:0, APIC id, flags, SAPIC EID, domain bits 31:8, clock domain
        w.u8(SRAT_TYPE.CPU_AFFINITY)
          .u8(16)
          .u8(c.node & 0xff)
          .u8(c.apicId)
          .u32(ENABLED)
          .u8(0)
        w.u8((c.node >> 8) & 0xff)
          .u8((c.node >> 16) & 0xff)
          .u8((c.node >> 24) & 0xff)
          .u32(0)
      } else {
        // §5.2.16.3
        w.u8(SRAT_TYPE.X2APIC_CPU_AFFINITY).u8(24).u16(0).u32(c.node).u32(c.apicId).u32(ENABLED).u32(0).u32(0)
      }
    }
    nodes.forEach((ranges, node) => {
      for (const r of ranges) {
        // §5.2.16.2: domain, reserved, base lo/hi, length lo/hi, reserved, flags, reserved
        w.u8(SRAT_TYPE.MEMORY_AFFINITY).u8(40).u32(node).u16(0).u64(r.base).u64(r.size).u32(0).u32(ENABLED).u64(0)
      }
    })
  })
}
