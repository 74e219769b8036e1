import { describe, expect, it } from 'vitest'
import { cpuCount, cpusPerLlc, parseTopology, type TopologySpec as Topology } from '../../../runtime/protocol/topology.js'
import { advertisedXcr0, type CpuidEntry, cpuidForAllVcpus, cpuidForVcpu, cpuVendor, FEATURE, KVM_PV_FEATURE } from '../../../src/vm/kvm/arch/x86_64/cpuid.js'
import { apicId, apicIdScheme, bitsFor, cpuPlace, maxApicId, needsX2apic } from '../../../src/vm/kvm/arch/x86_64/topology-ids.js'
import { withheldPvFeatures } from '../../../src/vm/kvm/launch.js'

const regs = (s: string) => {
  const b = Buffer.from(s, 'latin1')
  return [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)] as const
}
const e = (fn: number, index: number, eax: number, ebx = 0, ecx = 0, edx = 0, flags = 0): CpuidEntry => ({
  function: fn,
  index,
  flags,
  eax,
  ebx,
  ecx,
  edx,
})
const vendorLeaf = (max: number, vendor: string) => {
  const [ebx, edx, ecx] = regs(vendor)
  return e(0, 0, max, ebx, ecx, edx)
}
const [kvmB, kvmC, kvmD] = regs('KVMKVMKVM\0\0\0')
const cache = (type: number, level: number, sharing: number, cores: number) => (type | (level << 5) | (1 << 8) | (sharing << 14) | (cores << 26)) >>> 0

/** What KVM_GET_SUPPORTED_CPUID looks like on a 16-thread Intel host (trimmed). */
const intelHost: CpuidEntry[] = [
  vendorLeaf(0x1f, 'GenuineIntel'),
  e(1, 0, 0x000806ec, 0x00100800, 0xf6fa3203 | FEATURE.MONITOR | FEATURE.VMX, 0x0f8bfbff),
  e(4, 0, cache(1, 1, 1, 7), 0x01c0003f, 63, 0, 1),
  e(4, 1, cache(2, 1, 1, 7), 0x01c0003f, 63, 0, 1),
  e(4, 2, cache(3, 2, 1, 7), 0x00c0003f, 1023, 0, 1),
  e(4, 3, cache(3, 3, 15, 7), 0x02c0003f, 16383, 6, 1),
  e(4, 4, 0, 0, 0, 0, 1),
  e(0xb, 0, 0, 0, 0, 0, 1), // KVM leaves the topology leaves for the VMM to fill in
  e(0xb, 1, 0, 0, 0, 0, 1),
  e(0x1f, 0, 0, 0, 0, 0, 1),
  e(0x40000000, 0, 0x40000001, kvmB, kvmC, kvmD),
  e(0x40000001, 0, 0x01007afb),
  e(0x80000000, 0, 0x80000008),
  e(0x80000001, 0, 0, 0, 0x121, 0x2c100800),
  e(0x80000008, 0, 0x3027),
]

/** The same on an AMD Zen host, with host cache sharing and a 0x8000_0026 leaf. */
const amdHost: CpuidEntry[] = [
  vendorLeaf(0x10, 'AuthenticAMD'),
  e(1, 0, 0x00a20f12, 0x00100800, 0xf6f83203, 0x178bfbff),
  e(0xb, 0, 0, 0, 0, 0, 1),
  e(0xb, 1, 0, 0, 0, 0, 1),
  e(0x80000000, 0, 0x80000026),
  e(0x80000001, 0, 0, 0, 0x75c237ff & ~FEATURE.TOPOEXT, 0x2fd3fbff),
  e(0x80000006, 0, 0x48002200, 0x68004200, 0x02006140, 0),
  e(0x80000008, 0, 0x3030, 0, 0x0000700f),
  e(0x8000001d, 0, cache(1, 1, 1, 0), 0x01c0003f, 63, 0, 1),
  e(0x8000001d, 1, cache(3, 3, 15, 0), 0x03c0003f, 32767, 1, 1),
  e(0x8000001e, 0, 0, 0x100, 0, 0),
  e(0x80000026, 0, 1, 2, 0x100, 0, 1),
]

const find = (l: CpuidEntry[], fn: number, index = 0) => l.find((x) => x.function === fn && x.index === index)
const countOrder = (n: number) => (n <= 1 ? 0 : 32 - Math.clz32(n - 1)) // Linux get_count_order

/** The topology Linux derives from one vCPU's CPUID (arch/x86/kernel/cpu/topology_common.c, cacheinfo.c). */
function linuxView(l: CpuidEntry[], vendor: 'intel' | 'amd') {
  const smt = find(l, 0xb, 0)!
  const core = find(l, 0xb, 1)!
  const end = find(l, 0xb, 2)!
  const apic = smt.edx
  const cacheLeaf = vendor === 'intel' ? 4 : 0x8000001d
  const caches = l.filter((x) => x.function === cacheLeaf && (x.eax & 0x1f) !== 0)
  const idAt = (level: number) => {
    const c = caches.find((x) => ((x.eax >> 5) & 7) === level)!
    return apic >> countOrder(((c.eax >> 14) & 0xfff) + 1)
  }
  return {
    apic,
    legacyApic: find(l, 1)!.ebx >>> 24,
    levels: [(smt.ecx >> 8) & 0xff, (core.ecx >> 8) & 0xff, (end.ecx >> 8) & 0xff],
    smtShift: smt.eax & 0x1f,
    pkgShift: core.eax & 0x1f,
    threads: smt.ebx & 0xffff,
    perPackage: core.ebx & 0xffff,
    package: apic >> (core.eax & 0x1f),
    coreId: apic >> (smt.eax & 0x1f),
    l1Id: idAt(1),
    l2Id: idAt(2),
    llcId: idAt(3),
  }
}

describe('APIC id scheme', () => {
  it('packs thread, core and LLC bits', () => {
    expect([1, 2, 3, 4, 5, 8, 9].map(bitsFor)).toEqual([0, 1, 2, 2, 3, 3, 4])
    const t = parseTopology('2n2l2c2t')
    expect(apicIdScheme(t)).toEqual({ smtBits: 1, coreBits: 1, packageShift: 2 })
    expect(Array.from({ length: 8 }, (_, i) => apicId(t, i))).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(cpuPlace(t, 5)).toEqual({ cpu: 5, node: 1, llc: 1, core: 0, thread: 1, apicId: 5 })
    const sparse = parseTopology('1n2l3c1t') // 3 cores take 2 bits: ids 0,1,2 then 4,5,6
    expect(Array.from({ length: 6 }, (_, i) => apicId(sparse, i))).toEqual([0, 1, 2, 4, 5, 6])
    expect(maxApicId(parseTopology('1n14l9c2t'))).toBe(13 * 32 + 8 * 2 + 1)
    expect(needsX2apic(parseTopology('1n14l9c2t'))).toBe(true)
    expect(needsX2apic(parseTopology('1n4l16c2t'))).toBe(false) // ids 0..127
  })
})

describe.each([
  ['intel', intelHost],
  ['amd', amdHost],
] as const)('CPUID on an %s host', (vendor, host) => {
  it('detects the vendor', () => expect(cpuVendor(host)).toBe(vendor))

  describe.each(['1n2l2c1t', '2n2l2c2t', '1n3l3c2t'])('topology %s', (topo) => {
    const t: Topology = parseTopology(topo)
    const all = cpuidForAllVcpus(host, t)
    const views = all.map((l) => linuxView(l, vendor))

    it('gives every vCPU its APIC id in leaves 1, 0xB (and 0x8000001E on AMD)', () => {
      expect(all).toHaveLength(cpuCount(t))
      views.forEach((v, cpu) => {
        expect(v.apic).toBe(apicId(t, cpu))
        expect(v.legacyApic).toBe(apicId(t, cpu) & 0xff)
        if (vendor === 'amd') expect(find(all[cpu]!, 0x8000001e)!.eax).toBe(apicId(t, cpu))
      })
      expect(new Set(views.map((v) => v.apic)).size).toBe(cpuCount(t))
    })

    it('describes SMT and core levels with the scheme’s shifts', () => {
      const s = apicIdScheme(t)
      for (const v of views) {
        expect(v.levels).toEqual([1, 2, 0]) // SMT, Core, end
        expect(v.smtShift).toBe(s.smtBits)
        expect(v.pkgShift).toBe(s.packageShift)
        expect(v.threads).toBe(t.threadsPerCore)
        expect(v.perPackage).toBe(cpusPerLlc(t))
      }
      // Linux's package = LLC, and SMT siblings share a core id.
      views.forEach((v, cpu) => expect(v.package).toBe(cpuPlace(t, cpu).llc))
      for (let cpu = 0; cpu < cpuCount(t); cpu++) {
        const sib = views.filter((v, o) => v.coreId === views[cpu]!.coreId && o !== cpu)
        expect(sib).toHaveLength(t.threadsPerCore - 1)
      }
    })

    it('shares L3 among the CPUs of one LLC and L1/L2 among SMT siblings', () => {
      const groups = (key: 'llcId' | 'l1Id' | 'l2Id') => {
        const m = new Map<number, number[]>()
        views.forEach((v, cpu) => m.set(v[key], [...(m.get(v[key]) ?? []), cpu]))
        return [...m.values()]
      }
      expect(groups('llcId')).toEqual(Array.from({ length: t.llcs }, (_, l) => Array.from({ length: cpusPerLlc(t) }, (_, i) => l * cpusPerLlc(t) + i)))
      for (const key of ['l1Id', 'l2Id'] as const) {
        const g = groups(key)
        expect(g).toHaveLength(t.llcs * t.coresPerLlc)
        for (const cpus of g) expect(cpus).toHaveLength(t.threadsPerCore)
      }
    })

    it('hides what the VMM does not provide and announces KVM', () => {
      for (const l of all) {
        const l1 = find(l, 1)!
        expect(l1.ecx & FEATURE.HYPERVISOR).not.toBe(0)
        expect(l1.ecx & FEATURE.X2APIC).not.toBe(0)
        expect(l1.ecx & FEATURE.TSC_DEADLINE).not.toBe(0)
        expect(l1.ecx & (FEATURE.VMX | FEATURE.MONITOR)).toBe(0)
        expect(!!(l1.edx & FEATURE.HTT)).toBe(cpusPerLlc(t) > 1)
        expect(find(l, 0x80000001)!.ecx & FEATURE.SVM).toBe(0)
        const h = find(l, 0x40000000)!
        expect(Buffer.from(new Uint32Array([h.ebx, h.ecx, h.edx]).buffer).toString('latin1')).toBe('KVMKVMKVM\0\0\0')
        expect((find(l, 0x40000001)?.eax ?? 0) & KVM_PV_FEATURE['msi-ext-dest-id']).toBe(0) // small ids need no extended MSI
        expect(find(l, 0)!.eax).toBeGreaterThanOrEqual(0xb)
        expect(l.filter((x) => x.function === 0xb && x.index === 0)).toHaveLength(1)
      }
      expect(cpuidForVcpu(host, t, 0, { tscDeadline: false }).find((x) => x.function === 1)!.ecx & FEATURE.TSC_DEADLINE).toBe(0)
    })

    if (vendor === 'amd') {
      it('fills the AMD topology leaves', () => {
        const s = apicIdScheme(t)
        all.forEach((l, cpu) => {
          expect(find(l, 0x80000001)!.ecx & FEATURE.TOPOEXT).not.toBe(0)
          const e8 = find(l, 0x80000008)!.ecx
          expect((e8 >> 12) & 0xf).toBe(s.packageShift)
          expect(e8 & 0xff).toBe(cpusPerLlc(t) - 1)
          const e1e = find(l, 0x8000001e)!
          expect(e1e.ecx & 0xff).toBe(cpuPlace(t, cpu).llc) // pre-Zen Linux: llc_id = this node id
          expect(((e1e.ebx >> 8) & 0xff) + 1).toBe(t.threadsPerCore)
          expect(find(l, 0x80000006)!.edx).not.toBe(0) // Linux's AMD L3 gate
          expect(l.some((x) => x.function === 0x80000026)).toBe(false)
          expect(find(l, 0x80000000)!.eax).toBeGreaterThanOrEqual(0x8000001e)
        })
      })
    }
  })

  it('rebuilds 0x1F exactly when the host list has it', () => {
    const l = cpuidForVcpu(host, parseTopology('1n2l2c2t'), 3)
    const has1f = host.some((x) => x.function === 0x1f)
    expect(l.filter((x) => x.function === 0x1f).map((x) => [x.index, x.eax, x.ebx, (x.ecx >> 8) & 0xff, x.edx])).toEqual(
      has1f
        ? [
            [0, 1, 2, 1, 3],
            [1, 2, 4, 2, 3],
            [2, 0, 0, 0, 3],
          ]
        : [],
    )
  })

  it('enables extended MSI destinations when APIC ids pass 254', () => {
    const t = parseTopology('2n14l9c2t')
    const l = cpuidForVcpu(host, t, cpuCount(t) - 1)
    expect(find(l, 0x40000001)!.eax & KVM_PV_FEATURE['msi-ext-dest-id']).not.toBe(0)
    expect(find(l, 0xb, 0)!.edx).toBe(maxApicId(t))
  })

  it('returns fresh lists and leaves the supported list alone', () => {
    const before = JSON.stringify(host)
    const t = parseTopology('2n2l2c2t')
    const a = cpuidForVcpu(host, t, 1)
    const b = cpuidForVcpu(host, t, 2)
    expect(JSON.stringify(host)).toBe(before)
    expect(find(a, 0xb)).not.toBe(find(b, 0xb))
    expect(find(a, 0xb)!.edx).not.toBe(find(b, 0xb)!.edx)
  })
})

describe('cache leaves on an Intel host that reports none', () => {
  it('synthesizes leaf 4 with the topology’s sharing', () => {
    const bare = intelHost.filter((x) => x.function !== 4)
    const t = parseTopology('1n2l4c2t')
    const l = cpuidForVcpu(bare, t, 9)
    const caches = l.filter((x) => x.function === 4)
    expect(caches.map((x) => (x.eax >> 5) & 7)).toEqual([1, 1, 2, 3, 0])
    expect(caches.map((x) => x.eax & 0x1f)).toEqual([1, 2, 3, 3, 0])
    expect(linuxView(l, 'intel').llcId).toBe(1)
    expect(((caches[3]!.eax >> 14) & 0xfff) + 1).toBe(8)
  })
})

describe('XSAVE state components (leaf 0xD) and the XCR0 preloaded for the guest', () => {
  const AVX = 1 << 28
  const PKU = 1 << 3
  /** What a nested AMD KVM reports under QEMU TCG -cpu max: x87, SSE, AVX, PKRU; PKRU at 0xa80. */
  const host = (leaf7Ecx: number, avx = true): CpuidEntry[] => [
    vendorLeaf(0xd, 'AuthenticAMD'),
    e(1, 0, 0x00a20f12, 0x00100800, (FEATURE.XSAVE | (avx ? AVX : 0)) >>> 0, 0x178bfbff),
    e(7, 0, 0, 0, leaf7Ecx, 0, 1),
    e(0xd, 0, 0x207, 0x240, 0xa88, 0, 1),
    e(0xd, 1, 0x5, 0, 0, 0, 1),
    e(0xd, 2, 0x100, 0x240, 0, 0, 1),
    e(0xd, 9, 0x8, 0xa80, 0, 0, 1),
  ]
  const t = parseTopology('1n1l2c1t')

  it('keeps what the feature leaves back: XCR0 = 0xD.0 EDX:EAX, ECX covers the last component', () => {
    const l = cpuidForVcpu(host(PKU), t, 0)
    expect(find(l, 0xd)!.eax).toBe(0x207)
    expect(find(l, 0xd)!.ecx).toBe(0xa88)
    expect(advertisedXcr0(l)).toBe(0x207n)
  })

  it('drops PKRU when leaf 7 has no PKU (kvm_amd npt=0) and shrinks the size to x87+SSE+AVX', () => {
    const l = cpuidForVcpu(host(0), t, 1)
    expect(find(l, 0xd)!.eax).toBe(0x7)
    expect(find(l, 0xd)!.ecx).toBe(576 + 256)
    expect(advertisedXcr0(l)).toBe(0x7n)
  })

  it('drops AVX state without AVX', () => {
    const l = cpuidForVcpu(host(0, false), t, 0)
    expect(advertisedXcr0(l)).toBe(0x3n)
    expect(find(l, 0xd)!.ecx).toBe(576)
  })

  it('preloads nothing without XSAVE', () => {
    const noXsave = host(PKU).map((x) => (x.function === 1 ? { ...x, ecx: (x.ecx & ~FEATURE.XSAVE) >>> 0 } : x))
    expect(advertisedXcr0(cpuidForVcpu(noXsave, t, 0))).toBeUndefined()
  })
})

describe('KVM paravirtual features', () => {
  const t = parseTopology('1n1l2c1t')
  const pv = (opts: Parameters<typeof cpuidForVcpu>[3]) => find(cpuidForVcpu(intelHost, t, 0, opts), 0x40000001)!.eax

  it('withholds exactly the features asked for, keeping the rest KVM supports', () => {
    const all = pv({})
    expect(all).toBe(0x01007afb)
    const some = pv({ withholdPv: ['async-pf', 'steal-time'] })
    expect(some).toBe((all & ~(KVM_PV_FEATURE['async-pf'] | KVM_PV_FEATURE['steal-time'])) >>> 0)
  })

  it('by default the guest gets no async page faults, steal time, PV TLB flush or PV spinlocks', () => {
    const eax = pv({ withholdPv: withheldPvFeatures(undefined) })
    for (const f of ['async-pf', 'async-pf-int', 'async-pf-vmexit', 'steal-time', 'pv-tlb-flush', 'pv-unhalt'] as const) expect(eax & KVM_PV_FEATURE[f], f).toBe(0)
    for (const f of ['clocksource2', 'pv-eoi', 'pv-send-ipi', 'pv-sched-yield'] as const) expect(eax & KVM_PV_FEATURE[f], f).not.toBe(0)
  })

  it('KTSTR_KVM_WITHHOLD_PV replaces the default list and names what it does not know', () => {
    expect(withheldPvFeatures('')).toEqual([])
    expect(withheldPvFeatures('pv-eoi, pv-send-ipi')).toEqual(['pv-eoi', 'pv-send-ipi'])
    expect(() => withheldPvFeatures('pv-eoi,warp-drive')).toThrow(/KTSTR_KVM_WITHHOLD_PV: unknown feature warp-drive; known: clocksource, /)
  })
})
