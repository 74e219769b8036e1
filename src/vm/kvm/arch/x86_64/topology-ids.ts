/**
 * The APIC id scheme that ties CPU numbers, ACPI (MADT/SRAT) and CPUID together. Both acpi/ and
 * cpuid.ts derive everything from here, so the guest sees one consistent topology.
 *
 * x2APIC id = llc << packageShift | core << smtBits | thread, with
 *   smtBits     = ceil(log2(threadsPerCore))
 *   coreBits    = ceil(log2(coresPerLlc))
 *   packageShift = smtBits + coreBits
 * Each LLC is one package (socket), as in the QEMU backend (`-smp sockets=<llcs>`), so leaf 0xB's
 * core level spans one LLC and leaf 4 / 0x8000001D say L3 is shared by the 2^packageShift ids of
 * a package. NUMA nodes hold whole LLCs (topology.ts), so no package spans two nodes.
 * Ids are not dense when a count is not a power of two (3 cores → core ids 0..2 of 4 slots).
 *
 * CPU n (Linux's numbering: LLC-major, then core, then thread) has apicId(t, n). The runtime must
 * create vCPU n with KVM_CREATE_VCPU(apicId(t, n)): KVM uses the vCPU id as the initial APIC id.
 * CPU 0 has APIC id 0, the default KVM boot CPU.
 */
import { cpuCount, cpusPerLlc, llcsPerNode, type TopologySpec as Topology } from '../../../../../runtime/protocol/topology.js'

/** Bits needed for ids 0..n-1 (0 for n <= 1). */
export function bitsFor(n: number): number {
  return n <= 1 ? 0 : 32 - Math.clz32(n - 1)
}

export interface ApicIdScheme {
  readonly smtBits: number
  readonly coreBits: number
  /** APIC id bits below the package (LLC) id: smtBits + coreBits. */
  readonly packageShift: number
}

export function apicIdScheme(t: Topology): ApicIdScheme {
  const smtBits = bitsFor(t.threadsPerCore)
  const coreBits = bitsFor(t.coresPerLlc)
  return { smtBits, coreBits, packageShift: smtBits + coreBits }
}

export interface CpuPlace {
  readonly cpu: number
  readonly node: number
  readonly llc: number
  /** Core index within its LLC. */
  readonly core: number
  /** Thread index within its core. */
  readonly thread: number
  readonly apicId: number
}

export function cpuPlace(t: Topology, cpu: number): CpuPlace {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= cpuCount(t)) throw new RangeError(`CPU ${cpu} is not in the topology`)
  const perLlc = cpusPerLlc(t)
  const llc = Math.floor(cpu / perLlc)
  const inLlc = cpu % perLlc
  const core = Math.floor(inLlc / t.threadsPerCore)
  const thread = inLlc % t.threadsPerCore
  const node = Math.floor(llc / llcsPerNode(t))
  const s = apicIdScheme(t)
  const apicId = llc * 2 ** s.packageShift + (core << s.smtBits) + thread
  return { cpu, node, llc, core, thread, apicId }
}

export const apicId = (t: Topology, cpu: number): number => cpuPlace(t, cpu).apicId

/** Every CPU's place, CPU 0 first. */
export function cpuPlaces(t: Topology): CpuPlace[] {
  return Array.from({ length: cpuCount(t) }, (_, cpu) => cpuPlace(t, cpu))
}

export function maxApicId(t: Topology): number {
  return apicId(t, cpuCount(t) - 1)
}

/**
 * APIC ids from 255 up need x2APIC: MADT/SRAT x2APIC entries, and (for interrupts to reach them)
 * KVM_FEATURE_MSI_EXT_DEST_ID in CPUID plus KVM_CAP_X2APIC_API on the VM. 255 is the xAPIC
 * broadcast id, so the last xAPIC-addressable id is 254.
 */
export const MAX_XAPIC_ID = 254
export const needsX2apic = (t: Topology): boolean => maxApicId(t) > MAX_XAPIC_ID
