import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cpuCount, parseTopology, type TopologySpec as Topology } from '../../../runtime/protocol/topology.js'
import { byteSum } from '../../../src/vm/kvm/arch/x86_64/acpi/sdt.js'
import { type AcpiTables, buildAcpiTables, writeAcpiTables } from '../../../src/vm/kvm/arch/x86_64/acpi/tables.js'
import { ACPI_PM } from '../../../src/vm/kvm/arch/x86_64/platform.js'
import { cpuPlaces } from '../../../src/vm/kvm/arch/x86_64/topology-ids.js'
import { GiB, type MemoryLayout, MiB, X86_LAYOUT, x86MemoryLayout } from '../../../src/vm/kvm/memory/layout.js'
import { GuestMemory } from '../../../src/vm/memory/guest-memory.js'

const haveIasl = spawnSync('iasl', ['-v'], { encoding: 'utf8' }).status === 0
if (!haveIasl) console.warn('skipping iasl disassembly checks: iasl not found (Debian package acpica-tools)')

const work = mkdtempSync(path.join(tmpdir(), 'ktstr-acpi-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const cases: [string, number][] = [
  ['1n2l2c1t', 256 * MiB],
  ['2n2l2c2t', 1 * GiB],
  ['2n4l3c2t', 5 * GiB], // non-power-of-two cores: sparse APIC ids; a node spans the MMIO hole
  ['2n14l9c2t', 16 * GiB], // 252 CPUs, APIC ids up to 447: x2APIC entries
]

function build(topo: string, mem: number): { t: Topology; layout: MemoryLayout; acpi: AcpiTables } {
  const t = parseTopology(topo)
  const layout = x86MemoryLayout(mem)
  return { t, layout, acpi: buildAcpiTables(t, layout) }
}

/** Runs `iasl -d` on one table and returns the .dsl text, asserting a clean disassembly. */
function disassemble(dir: string, name: string, bytes: Uint8Array): string {
  const file = path.join(dir, `${name}.dat`)
  writeFileSync(file, bytes)
  const r = spawnSync('iasl', ['-d', file], { cwd: dir, encoding: 'utf8' })
  const out = `${r.stdout}\n${r.stderr}`
  expect(r.status, out).toBe(0)
  expect(out).not.toMatch(/Error|\*\*\*\* Unknown|Invalid/)
  const dsl = readFileSync(path.join(dir, `${name}.dsl`), 'utf8')
  expect(dsl).not.toMatch(/\*\*\*\* Unknown|Invalid|Error/)
  return dsl
}

const fields = (dsl: string, label: string): string[] => [...dsl.matchAll(new RegExp(`${label}\\s*:\\s*(\\S+)`, 'g'))].map((m) => m[1]!)
const hexes = (dsl: string, label: string): number[] => fields(dsl, label).map((v) => parseInt(v, 16))

describe.each(cases)('ACPI tables for %s', (topo, mem) => {
  const { t, layout, acpi } = build(topo, mem)
  const bySig = (s: string) => acpi.tables.find((x) => x.signature === s)

  it('checksum to zero and carry their own length', () => {
    for (const table of acpi.tables) {
      const { signature: sig, bytes } = table
      if (sig === 'RSD PTR ') {
        expect(byteSum(bytes, 0, 20)).toBe(0)
        expect(byteSum(bytes)).toBe(0)
        expect(bytes.length).toBe(36)
      } else if (sig === 'FACS') {
        expect(table.address % 64).toBe(0)
        expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(64)
      } else {
        expect(byteSum(bytes), sig).toBe(0)
        expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(bytes.length)
        expect(Buffer.from(bytes.subarray(0, 4)).toString()).toBe(sig)
      }
    }
    expect(acpi.end).toBeLessThanOrEqual(X86_LAYOUT.ACPI_END)
    expect(acpi.rsdpAddress).toBe(X86_LAYOUT.ACPI)
  })

  it('chain RSDP → XSDT → FADT → DSDT/FACS in guest memory', () => {
    const memory = GuestMemory.allocate([{ base: 0, size: 2 * MiB }])
    writeAcpiTables(memory, acpi)
    const rsdp = acpi.rsdpAddress
    expect(Buffer.from(memory.readBytes(rsdp, 8)).toString()).toBe('RSD PTR ')
    expect(memory.readU8(rsdp + 15)).toBe(2) // revision
    const xsdt = Number(memory.readU64(rsdp + 24))
    const sig = (a: number) => Buffer.from(memory.readBytes(a, 4)).toString()
    expect(sig(xsdt)).toBe('XSDT')
    const n = (memory.readU32(xsdt + 4) - 36) / 8
    const listed = Array.from({ length: n }, (_, i) => sig(Number(memory.readU64(xsdt + 36 + 8 * i))))
    expect(listed).toEqual(t.numaNodes > 1 ? ['FACP', 'APIC', 'SRAT', 'SLIT'] : ['FACP', 'APIC'])
    const fadt = Number(memory.readU64(xsdt + 36))
    expect(sig(memory.readU32(fadt + 40))).toBe('DSDT')
    expect(sig(Number(memory.readU64(fadt + 140)))).toBe('DSDT')
    expect(sig(Number(memory.readU64(fadt + 132)))).toBe('FACS')
  })

  it.skipIf(!haveIasl)('disassemble with iasl -d and say what we meant', () => {
    const dir = mkdtempSync(path.join(work, `${topo}-`))
    const places = cpuPlaces(t)

    const apic = disassemble(dir, 'apic', bySig('APIC')!.bytes)
    const xapic = places.filter((c) => c.apicId <= 254)
    const x2apic = places.filter((c) => c.apicId > 254)
    expect(apic.match(/\[Processor Local APIC\]/g)?.length ?? 0).toBe(xapic.length)
    expect(apic.match(/\[Processor Local x2APIC\]/g)?.length ?? 0).toBe(x2apic.length)
    expect(xapic.length + x2apic.length).toBe(cpuCount(t))
    expect(hexes(apic, 'Local Apic ID')).toEqual(xapic.map((c) => c.apicId))
    expect(hexes(apic, 'Processor x2Apic ID')).toEqual(x2apic.map((c) => c.apicId))
    expect(hexes(apic, 'Processor UID')).toEqual([...x2apic.map((c) => c.cpu), ...(x2apic.length ? [0xffff_ffff] : [])])
    expect(apic).toMatch(/Address : FEC00000/)
    expect(hexes(apic, 'Source')).toEqual([0, ACPI_PM.SCI_IRQ])
    expect(hexes(apic, 'Interrupt')).toEqual([0, 2, ACPI_PM.SCI_IRQ]) // IO-APIC GSI base, then the overrides

    const facp = disassemble(dir, 'facp', bySig('FACP')!.bytes)
    expect(hexes(facp, 'PM1A Control Block Address')).toEqual([ACPI_PM.PM1A_CNT])
    expect(hexes(facp, 'PM1A Event Block Address')).toEqual([ACPI_PM.PM1A_EVT])
    expect(hexes(facp, 'PM Timer Block Address')).toEqual([0])
    expect(hexes(facp, 'SCI Interrupt')).toEqual([ACPI_PM.SCI_IRQ])
    expect(fields(facp, 'Hardware Reduced \\(V5\\)')).toEqual(['0'])
    expect(fields(facp, 'CMOS RTC Not Present \\(V5\\)')).toEqual(['1'])
    expect(fields(facp, 'Reset Register Supported \\(V2\\)')).toEqual(['1'])

    const dsdt = disassemble(dir, 'dsdt', bySig('DSDT')!.bytes)
    expect(dsdt.replace(/\s+/g, ' ')).toContain(`Name (_S5, Package (0x04) // _S5_: S5 System State { 0x05, 0x05, Zero, Zero })`)
    disassemble(dir, 'facs', bySig('FACS')!.bytes)
    const xsdt = disassemble(dir, 'xsdt', bySig('XSDT')!.bytes)
    expect(hexes(xsdt, 'ACPI Table Address\\s+\\d+')).toEqual(acpi.tables.filter((x) => ['FACP', 'APIC', 'SRAT', 'SLIT'].includes(x.signature)).map((x) => x.address))

    if (t.numaNodes > 1) {
      const srat = disassemble(dir, 'srat', bySig('SRAT')!.bytes)
      // CPU entries: proximity domain = node, in APIC id order; xAPIC entries split the domain in two fields.
      expect(hexes(srat, 'Proximity Domain Low\\(8\\)')).toEqual(xapic.map((c) => c.node))
      expect(hexes(srat, 'Apic ID')).toEqual(places.map((c) => c.apicId))
      const memDomains = [...srat.matchAll(/\[Memory Affinity\][\s\S]*?Proximity Domain : (\S+)[\s\S]*?Base Address : (\S+)[\s\S]*?Address Length : (\S+)/g)].map((m) => ({
        node: parseInt(m[1]!, 16),
        base: parseInt(m[2]!, 16),
        size: parseInt(m[3]!, 16),
      }))
      expect(memDomains.reduce((s, m) => s + m.size, 0)).toBe(layout.memBytes)
      expect(new Set(memDomains.map((m) => m.node))).toEqual(new Set(Array.from({ length: t.numaNodes }, (_, i) => i)))
      for (const m of memDomains) {
        expect(layout.ram.some((r) => m.base >= r.base && m.base + m.size <= r.base + r.size)).toBe(true)
      }

      const slit = disassemble(dir, 'slit', bySig('SLIT')!.bytes)
      expect(hexes(slit, 'Localities')).toEqual([t.numaNodes])
      const rows = [...slit.matchAll(/Locality\s+(\d+) : ([0-9A-F ]+)/g)].map((m) =>
        m[2]!
          .trim()
          .split(' ')
          .map((x) => parseInt(x, 16)),
      )
      expect(rows).toHaveLength(t.numaNodes)
      rows.forEach((row, i) => row.forEach((d, j) => expect(d).toBe(i === j ? 10 : 20)))
    } else {
      expect(bySig('SRAT')).toBeUndefined()
    }
  })
})

describe('ACPI table space', () => {
  it('refuses to overflow the area reserved for the tables', () => {
    const t = parseTopology('1n2l2c1t')
    expect(() => buildAcpiTables(t, x86MemoryLayout(256 * MiB), 0xe_0000, 0xe_0100)).toThrow(/only 256 are reserved/)
  })

  it.skipIf(!haveIasl)('uses an iasl that knows our table revisions', () => {
    expect(execFileSync('iasl', ['-v'], { encoding: 'utf8' })).toMatch(/ACPI Component Architecture/)
  })
})
