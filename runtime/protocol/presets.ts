/**
 * ktstr's 24 x86_64 gauntlet presets (ktstr src/vm.rs `gauntlet_presets()`), with its memory budgets.
 * aarch64 drops the SMT ones (`threadsPerCore > 1`).
 */
import { parseTopology, type TopologySpec } from './topology.js'

export interface TopologyPreset {
  name: string
  description: string
  topology: TopologySpec
  memoryMib: number
}

const p = (name: string, description: string, numaNodes: number, llcs: number, coresPerLlc: number, threadsPerCore: number, memoryMib: number): TopologyPreset => ({
  name,
  description,
  topology: { numaNodes, llcs, coresPerLlc, threadsPerCore },
  memoryMib,
})

export const PRESETS: readonly TopologyPreset[] = [
  p('tiny-1llc', '4 CPUs, 1 LLC', 1, 1, 4, 1, 2048),
  p('tiny-2llc', '4 CPUs, 2 LLCs', 1, 2, 2, 1, 2048),
  p('odd-3llc', '9 CPUs, 3 LLCs (odd)', 1, 3, 3, 1, 2048),
  p('odd-5llc', '15 CPUs, 5 LLCs (prime)', 1, 5, 3, 1, 2048),
  p('odd-7llc', '14 CPUs, 7 LLCs (prime)', 1, 7, 2, 1, 2048),
  p('smt-2llc', '8 CPUs, 2 LLCs with SMT', 1, 2, 2, 2, 2048),
  p('smt-3llc', '12 CPUs, 3 LLCs with SMT', 1, 3, 2, 2, 2048),
  p('medium-4llc', '32 CPUs, 4 LLCs', 1, 4, 4, 2, 2048),
  p('medium-8llc', '64 CPUs, 8 LLCs', 1, 8, 4, 2, 2048),
  p('large-4llc', '128 CPUs, 4 LLCs', 1, 4, 16, 2, 2048),
  p('large-8llc', '128 CPUs, 8 LLCs', 1, 8, 8, 2, 2048),
  p('near-max-llc', '240 CPUs, 15 LLCs (near max)', 1, 15, 8, 2, 2048),
  p('max-cpu', '252 CPUs, 14 LLCs (near KVM vCPU limit)', 1, 14, 9, 2, 4096),
  p('medium-4llc-nosmt', '32 CPUs, 4 LLCs (no SMT)', 1, 4, 8, 1, 2048),
  p('medium-8llc-nosmt', '64 CPUs, 8 LLCs (no SMT)', 1, 8, 8, 1, 2048),
  p('large-4llc-nosmt', '128 CPUs, 4 LLCs (no SMT)', 1, 4, 32, 1, 2048),
  p('large-8llc-nosmt', '128 CPUs, 8 LLCs (no SMT)', 1, 8, 16, 1, 2048),
  p('near-max-llc-nosmt', '240 CPUs, 15 LLCs (no SMT)', 1, 15, 16, 1, 2048),
  p('max-cpu-nosmt', '252 CPUs, 14 LLCs (no SMT, near KVM vCPU limit)', 1, 14, 18, 1, 4096),
  p('numa2-4llc', '16 CPUs, 2 NUMA nodes, 4 LLCs', 2, 4, 4, 1, 2048),
  p('numa2-8llc', '128 CPUs, 2 NUMA nodes, 8 LLCs', 2, 8, 8, 2, 2048),
  p('numa2-8llc-nosmt', '128 CPUs, 2 NUMA nodes, 8 LLCs (no SMT)', 2, 8, 16, 1, 2048),
  p('numa4-8llc', '32 CPUs, 4 NUMA nodes, 8 LLCs', 4, 8, 4, 1, 2048),
  p('numa4-12llc', '192 CPUs, 4 NUMA nodes, 12 LLCs', 4, 12, 8, 2, 4096),
]

export function presetNames(arch: 'x86_64' | 'aarch64' = 'x86_64'): string[] {
  return PRESETS.filter((q) => arch === 'x86_64' || q.topology.threadsPerCore === 1).map((q) => q.name)
}

export function findPreset(name: string): TopologyPreset | undefined {
  return PRESETS.find((q) => q.name === name)
}

/** A preset name (`smt-2llc`) or an `NnNlNcNt` string. */
export function resolveTopology(nameOrSpec: string): TopologySpec {
  const preset = findPreset(nameOrSpec.trim())
  return preset ? { ...preset.topology } : parseTopology(nameOrSpec)
}
