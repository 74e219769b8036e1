/**
 * Per-vCPU CPUID: the host's KVM_GET_SUPPORTED_CPUID list, patched so the guest sees our
 * topology (topology-ids.ts) — APIC ids, SMT/core shifts, and caches shared the way the LLCs are
 * — and so it does not see features our VMM does not provide.
 *
 * Leaves touched (Intel SDM vol. 2A "CPUID"; AMD APM vol. 3 appendix E):
 *  0x0         max basic leaf raised to 0xB (we always provide the extended topology leaf)
 *  0x1         EBX[31:24] initial APIC id, EBX[23:16] addressable ids per package, EDX.HTT;
 *              ECX: +hypervisor, +x2APIC, +TSC-deadline (option), -MONITOR/MWAIT, -VMX
 *  0xD         state components whose feature bit the guest does not see are dropped from
 *              0xD.0 EAX/EDX (and ECX, the size they need, recomputed): KVM can report PKRU
 *              there while leaf 7 lacks PKU (e.g. kvm_amd npt=0), and Linux enables only what
 *              the features back, so XCR0 and the advertised list would disagree
 *  0x4         cache sharing: L1/L2 per core (SMT siblings), L3 per LLC; synthesized on Intel when
 *              missing
 *  0xB, 0x1F   rebuilt: SMT level (shift smtBits, threadsPerCore), core level (shift
 *              packageShift, CPUs per LLC), terminator; EDX = x2APIC id. 0x1F only when the host
 *              list has it (Linux reads 0x1F first when the max leaf allows it)
 *  0x4000_0000 "KVMKVMKVM" signature, max leaf >= 0x4000_0001
 *  0x4000_0001 EAX bit 15 KVM_FEATURE_MSI_EXT_DEST_ID when an APIC id exceeds 254
 *  AMD only:
 *  0x8000_0001 ECX: +TopologyExtensions, +CmpLegacy (multi-CPU package), -SVM
 *  0x8000_0006 L2/L3 descriptors synthesized when the host reports none (Linux gates AMD L3
 *              detection on EDX != 0)
 *  0x8000_0008 ECX[15:12] APIC id bits per package, ECX[7:0] CPUs per package - 1
 *  0x8000_001D rebuilt: L1d, L1i, L2 per core, L3 per LLC
 *  0x8000_001E EAX extended APIC id, EBX core id and threads per core - 1, ECX "node" id = LLC:
 *              Linux (topology_amd.c) passes it to cacheinfo_amd_init_llc_id, which uses it as
 *              the LLC id on families before 17h
 *  0x8000_0026 dropped (Linux would prefer it over 0xB on AMD)
 *
 * KVM's supported list reports leaf 0xB without a core level and host cache sharing counts; both
 * must be replaced, not just patched (cf. ktstr's x86_64/topology.rs).
 * Known gap: on AMD family 17h models <= 1Fh (Zen 1) Linux ignores the cache leaves and takes
 * APIC id >> 3 as the LLC id, so LLC groups are right there only when packageShift is 3.
 */
import { cpuCount, cpusPerLlc, type TopologySpec as Topology } from '../../../../../runtime/protocol/topology.js'
import { apicIdScheme, cpuPlace, needsX2apic } from './topology-ids.js'

/** One kvm_cpuid_entry2 (the padding words dropped). */
export interface CpuidEntry {
  function: number
  index: number
  flags: number
  eax: number
  ebx: number
  ecx: number
  edx: number
}

/** kvm_cpuid_entry2.flags: the index (ECX subleaf) selects the entry. */
export const KVM_CPUID_FLAG_SIGNIFICANT_INDEX = 1

export type CpuVendor = 'intel' | 'amd' | 'unknown'

/** Leaf 0 vendor string, EBX-EDX-ECX. Hygon (AMD-derived) counts as AMD. */
export function cpuVendor(entries: readonly CpuidEntry[]): CpuVendor {
  const l0 = entries.find((e) => e.function === 0)
  if (!l0) return 'unknown'
  const s = [l0.ebx, l0.edx, l0.ecx].map((r) => String.fromCharCode(r & 0xff, (r >>> 8) & 0xff, (r >>> 16) & 0xff, r >>> 24)).join('')
  if (s === 'GenuineIntel') return 'intel'
  if (s === 'AuthenticAMD' || s === 'HygonGenuine') return 'amd'
  return 'unknown'
}

export const FEATURE = {
  /** Leaf 1 ECX. */
  MONITOR: 1 << 3,
  VMX: 1 << 5,
  XSAVE: 1 << 26,
  X2APIC: 1 << 21,
  TSC_DEADLINE: 1 << 24,
  HYPERVISOR: 1 << 31,
  /** Leaf 1 EDX. */
  HTT: 1 << 28,
  /** Leaf 0x8000_0001 ECX. */
  CMP_LEGACY: 1 << 1,
  SVM: 1 << 2,
  TOPOEXT: 1 << 22,
} as const

/** Leaf 0x4000_0001 EAX: the KVM paravirtual features (Linux Documentation/virt/kvm/x86/cpuid.rst). */
export const KVM_PV_FEATURE = {
  clocksource: 1 << 0,
  'nop-io-delay': 1 << 1,
  clocksource2: 1 << 3,
  'async-pf': 1 << 4,
  'steal-time': 1 << 5,
  'pv-eoi': 1 << 6,
  'pv-unhalt': 1 << 7,
  'pv-tlb-flush': 1 << 9,
  'async-pf-vmexit': 1 << 10,
  'pv-send-ipi': 1 << 11,
  'poll-control': 1 << 12,
  'pv-sched-yield': 1 << 13,
  'async-pf-int': 1 << 14,
  'msi-ext-dest-id': 1 << 15,
} as const
export type KvmPvFeature = keyof typeof KVM_PV_FEATURE

/** "KVMKVMKVM\0\0\0" as EBX, ECX, EDX. */
export const KVM_SIGNATURE = { ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x0000004d } as const

/** Extended topology level types (leaf 0xB/0x1F ECX[15:8]). */
const LEVEL = { INVALID: 0, SMT: 1, CORE: 2 } as const

export interface CpuidOptions {
  /**
   * Advertise the TSC-deadline timer (leaf 1 ECX[24]); KVM emulates it with an in-kernel LAPIC
   * but KVM_GET_SUPPORTED_CPUID does not report it. Pass false when
   * KVM_CHECK_EXTENSION(KVM_CAP_TSC_DEADLINE_TIMER) is 0. Default true.
   */
  readonly tscDeadline?: boolean
  /** KVM paravirtual features to withhold from the guest (leaf 0x4000_0001 EAX). */
  readonly withholdPv?: readonly KvmPvFeature[]
}

/** A geometry for synthesized cache leaves; sizes only show in /sys, sharing is what matters. */
interface CacheLevel {
  type: 1 | 2 | 3 // data, instruction, unified
  level: 1 | 2 | 3
  sizeKib: number
  ways: number
}
const LINE = 64
const SYNTH_CACHES: readonly CacheLevel[] = [
  { type: 1, level: 1, sizeKib: 32, ways: 8 },
  { type: 2, level: 1, sizeKib: 32, ways: 8 },
  { type: 3, level: 2, sizeKib: 1024, ways: 16 },
  { type: 3, level: 3, sizeKib: 16 * 1024, ways: 16 },
]

const u32 = (n: number) => n >>> 0
const setBits = (v: number, shift: number, width: number, field: number) => {
  const mask = (width >= 32 ? 0xffff_ffff : (1 << width) - 1) << shift
  return u32((v & ~mask) | ((field << shift) & mask))
}

export function cpuidForVcpu(supported: readonly CpuidEntry[], t: Topology, cpu: number, opts: CpuidOptions = {}): CpuidEntry[] {
  const vendor = cpuVendor(supported)
  const place = cpuPlace(t, cpu)
  const s = apicIdScheme(t)
  const perPackage = cpusPerLlc(t)
  const x2 = needsX2apic(t)
  const l1Sharing = (1 << s.smtBits) - 1
  const l3Sharing = 2 ** s.packageShift - 1
  const hadLeaf1F = supported.some((e) => e.function === 0x1f)

  const dropped = new Set([0xb, 0x1f, 0x8000_0026, ...(vendor === 'amd' ? [0x8000_001d] : [])])
  const out: CpuidEntry[] = supported.filter((e) => !dropped.has(e.function)).map((e) => ({ ...e }))
  const find = (fn: number, index = 0) => out.find((e) => e.function === fn && e.index === index)
  const ensure = (fn: number, index = 0, flags = 0): CpuidEntry => {
    let e = find(fn, index)
    if (!e) out.push((e = { function: fn, index, flags, eax: 0, ebx: 0, ecx: 0, edx: 0 }))
    return e
  }
  const cacheEax = (c: { type: number; level: number; selfInit: boolean }) => {
    const sharing = c.level <= 2 ? l1Sharing : l3Sharing
    return u32(c.type | (c.level << 5) | ((c.selfInit ? 1 : 0) << 8) | ((sharing & 0xfff) << 14))
  }
  const cacheRegs = (c: CacheLevel) => ({
    ebx: u32((LINE - 1) | ((c.ways - 1) << 22)), // one partition
    ecx: (c.sizeKib * 1024) / (LINE * c.ways) - 1,
  })

  // Leaf 0: make room for 0xB.
  const l0 = ensure(0)
  l0.eax = Math.max(l0.eax, 0xb)

  // Leaf 1.
  const l1 = ensure(1)
  l1.ebx = setBits(l1.ebx, 24, 8, place.apicId & 0xff)
  l1.ebx = setBits(l1.ebx, 16, 8, Math.min(255, 2 ** s.packageShift))
  if (perPackage > 1) l1.edx = u32(l1.edx | FEATURE.HTT)
  else l1.edx = u32(l1.edx & ~FEATURE.HTT)
  l1.ecx = u32((l1.ecx | FEATURE.HYPERVISOR | FEATURE.X2APIC) & ~(FEATURE.MONITOR | FEATURE.VMX))
  if (opts.tscDeadline ?? true) l1.ecx = u32(l1.ecx | FEATURE.TSC_DEADLINE)

  normalizeXsaveLeaf(out)

  // Leaf 4: deterministic cache parameters.
  const leaf4 = out.filter((e) => e.function === 4)
  if (leaf4.length === 0 && vendor === 'intel') {
    SYNTH_CACHES.forEach((c, i) => {
      out.push({
        function: 4,
        index: i,
        flags: KVM_CPUID_FLAG_SIGNIFICANT_INDEX,
        eax: setBits(cacheEax({ ...c, selfInit: true }), 26, 6, (1 << s.coreBits) - 1),
        ...cacheRegs(c),
        edx: 0,
      })
    })
    out.push({ function: 4, index: SYNTH_CACHES.length, flags: KVM_CPUID_FLAG_SIGNIFICANT_INDEX, eax: 0, ebx: 0, ecx: 0, edx: 0 })
    l0.eax = Math.max(l0.eax, 4)
  }
  for (const e of leaf4) {
    if ((e.eax & 0x1f) === 0) continue // no more caches
    const level = (e.eax >> 5) & 7
    e.eax = setBits(e.eax, 14, 12, level <= 2 ? l1Sharing : l3Sharing)
    e.eax = setBits(e.eax, 26, 6, (1 << s.coreBits) - 1)
  }

  // Leaves 0xB (and 0x1F): extended topology.
  for (const fn of hadLeaf1F ? [0xb, 0x1f] : [0xb]) {
    const sub = (index: number, shift: number, count: number, type: number): CpuidEntry => ({
      function: fn,
      index,
      flags: KVM_CPUID_FLAG_SIGNIFICANT_INDEX,
      eax: shift,
      ebx: count & 0xffff,
      ecx: u32((type << 8) | index),
      edx: place.apicId,
    })
    out.push(sub(0, s.smtBits, t.threadsPerCore, LEVEL.SMT))
    out.push(sub(1, s.packageShift, perPackage, LEVEL.CORE))
    out.push(sub(2, 0, 0, LEVEL.INVALID))
  }

  // Hypervisor leaves.
  const h0 = ensure(0x4000_0000)
  Object.assign(h0, KVM_SIGNATURE)
  h0.eax = Math.max(h0.eax, 0x4000_0001)
  const h1 = ensure(0x4000_0001)
  if (x2) h1.eax = u32(h1.eax | KVM_PV_FEATURE['msi-ext-dest-id'])
  for (const f of opts.withholdPv ?? []) h1.eax = u32(h1.eax & ~KVM_PV_FEATURE[f])

  // Extended leaves.
  const ext1 = find(0x8000_0001)
  if (ext1) ext1.ecx = u32(ext1.ecx & ~FEATURE.SVM)

  if (vendor === 'amd') {
    const x0e = ensure(0x8000_0000)
    x0e.eax = Math.max(x0e.eax, 0x8000_001e)
    const e1 = ensure(0x8000_0001)
    e1.ecx = u32((e1.ecx | FEATURE.TOPOEXT) & ~FEATURE.SVM)
    if (perPackage > 1) e1.ecx = u32(e1.ecx | FEATURE.CMP_LEGACY)

    const e6 = ensure(0x8000_0006)
    const l2 = SYNTH_CACHES[2]!
    const l3 = SYNTH_CACHES[3]!
    const ASSOC_16 = 0x8 // AMD's 4-bit associativity code for 16 ways
    if (e6.ecx === 0) e6.ecx = u32((l2.sizeKib << 16) | (ASSOC_16 << 12) | (1 << 8) | LINE)
    if (e6.edx === 0) e6.edx = u32(((l3.sizeKib / 512) << 18) | (ASSOC_16 << 12) | (1 << 8) | LINE)

    const e8 = ensure(0x8000_0008)
    e8.ecx = setBits(e8.ecx, 12, 4, s.packageShift)
    e8.ecx = setBits(e8.ecx, 0, 8, Math.min(0xff, perPackage - 1))

    SYNTH_CACHES.forEach((c, i) => {
      out.push({
        function: 0x8000_001d,
        index: i,
        flags: KVM_CPUID_FLAG_SIGNIFICANT_INDEX,
        eax: cacheEax({ ...c, selfInit: true }),
        ...cacheRegs(c),
        edx: 0,
      })
    })
    out.push({ function: 0x8000_001d, index: SYNTH_CACHES.length, flags: KVM_CPUID_FLAG_SIGNIFICANT_INDEX, eax: 0, ebx: 0, ecx: 0, edx: 0 })

    const e1e = ensure(0x8000_001e)
    e1e.eax = place.apicId
    e1e.ebx = u32(((t.threadsPerCore - 1) << 8) | (place.core & 0xff))
    e1e.ecx = place.llc & 0xff // one AMD node per package (= LLC); NUMA nodes come from the SRAT
    e1e.edx = 0
  }

  return out.sort((a, b) => a.function - b.function || a.index - b.index)
}

/** Leaf 0xD state components (XCR0 bits) and the CPUID feature each one needs (Linux: xsave_cpuid_features). */
const XSTATE_FEATURE: readonly { bits: number[]; fn: number; reg: 'ebx' | 'ecx' | 'edx'; bit: number }[] = [
  { bits: [2], fn: 1, reg: 'ecx', bit: 28 }, // YMM: AVX
  { bits: [3, 4], fn: 7, reg: 'ebx', bit: 14 }, // BNDREGS, BNDCSR: MPX
  { bits: [5, 6, 7], fn: 7, reg: 'ebx', bit: 16 }, // opmask, ZMM_Hi256, Hi16_ZMM: AVX512F
  { bits: [9], fn: 7, reg: 'ecx', bit: 3 }, // PKRU: PKU
  { bits: [17, 18], fn: 7, reg: 'edx', bit: 24 }, // XTILE_CFG, XTILE_DATA: AMX-TILE
]
/** Legacy region (512) + XSAVE header (64): the size with x87 and SSE only. */
const XSAVE_LEGACY_SIZE = 576

/**
 * Make leaf 0xD.0 list only state components the other leaves back, so the XCR0 Linux picks
 * equals EDX:EAX here; ECX (the buffer size they need) follows. EBX is KVM's to keep current.
 */
function normalizeXsaveLeaf(out: CpuidEntry[]): void {
  const d0 = out.find((e) => e.function === 0xd && e.index === 0)
  if (!d0) return
  const has = (fn: number, reg: 'ebx' | 'ecx' | 'edx', bit: number) => {
    const l = out.find((e) => e.function === fn && e.index === 0)
    return l !== undefined && ((l[reg] >>> bit) & 1) === 1
  }
  for (const f of XSTATE_FEATURE) {
    if (has(f.fn, f.reg, f.bit)) continue
    for (const b of f.bits) {
      if (b < 32) d0.eax = u32(d0.eax & ~(1 << b))
      else d0.edx = u32(d0.edx & ~(1 << (b - 32)))
    }
  }
  let size = XSAVE_LEGACY_SIZE
  for (let b = 2; b < 64; b++) {
    const on = b < 32 ? (d0.eax >>> b) & 1 : (d0.edx >>> (b - 32)) & 1
    const sub = on ? out.find((e) => e.function === 0xd && e.index === b) : undefined
    if (sub) size = Math.max(size, sub.ebx + sub.eax) // non-compacted: offset EBX, size EAX
  }
  d0.ecx = size
}

/**
 * XCR0 as the guest will set it: the state components leaf 0xD.0 advertises (EDX:EAX, made
 * consistent with the feature leaves by normalizeXsaveLeaf), when leaf 1 says XSAVE; undefined
 * without XSAVE. Linux enables exactly these (all it knows of: x87 … AVX-512, PKRU, AMX), so
 * loading this value with KVM_SET_XCRS before the guest runs is what its own XSETBV does.
 */
export function advertisedXcr0(entries: readonly CpuidEntry[]): bigint | undefined {
  const l1 = entries.find((e) => e.function === 1)
  const d0 = entries.find((e) => e.function === 0xd && e.index === 0)
  if (!l1 || !d0 || !(l1.ecx & FEATURE.XSAVE)) return undefined
  return (BigInt(d0.edx >>> 0) << 32n) | BigInt(d0.eax >>> 0)
}

/** The CPUID list of every vCPU, CPU 0 first. */
export function cpuidForAllVcpus(supported: readonly CpuidEntry[], t: Topology, opts: CpuidOptions = {}): CpuidEntry[][] {
  return Array.from({ length: cpuCount(t) }, (_, cpu) => cpuidForVcpu(supported, t, cpu, opts))
}
