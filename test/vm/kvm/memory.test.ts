import { describe, expect, it } from 'vitest'
import { GiB, MiB, nodeMemoryRanges, virtioMmioWindow, X86_LAYOUT, x86MemoryLayout } from '../../../src/vm/kvm/memory/layout.js'
import { guestAddress, guestAddressFromParts } from '../../../src/vm/memory/address.js'
import { GuestMemory, GuestMemoryError } from '../../../src/vm/memory/guest-memory.js'

describe('GuestAddress', () => {
  it('brands safe non-negative integers only', () => {
    expect(guestAddress(0x1000)).toBe(0x1000)
    expect(() => guestAddress(-1)).toThrow(RangeError)
    expect(() => guestAddress(1.5)).toThrow(RangeError)
    expect(() => guestAddress(2 ** 53)).toThrow(RangeError)
  })

  it('joins 32-bit halves and refuses what a number cannot hold exactly', () => {
    expect(guestAddressFromParts(0xd000_0000, 0)).toBe(0xd000_0000)
    expect(guestAddressFromParts(0x10, 0x1)).toBe(0x1_0000_0010)
    expect(guestAddressFromParts(0, 0x1f_ffff)).toBe(0x1f_ffff * 2 ** 32)
    expect(guestAddressFromParts(0, 0x20_0000)).toBeUndefined()
  })
})

describe('GuestMemory', () => {
  const twoRegions = () =>
    GuestMemory.allocate([
      { base: 0, size: 0x1000 },
      { base: 0x1000, size: 0x1000 }, // adjacent
      { base: 0x10_0000, size: 0x2000 }, // after a hole
    ])

  it('reads and writes little-endian scalars', () => {
    const m = twoRegions()
    m.writeU8(0x10, 0xab)
    m.writeU16(0x20, 0xbeef)
    m.writeU32(0x30, 0xdead_beef)
    m.writeU64(0x40, 0x0123_4567_89ab_cdefn)
    m.writeU64(0x48, 0x1234) // a number is accepted too
    expect(m.readU8(0x10)).toBe(0xab)
    expect(m.readU16(0x20)).toBe(0xbeef)
    expect(m.readU32(0x30)).toBe(0xdead_beef)
    expect(m.readU64(0x40)).toBe(0x0123_4567_89ab_cdefn)
    expect([...m.readBytes(0x30, 4)]).toEqual([0xef, 0xbe, 0xad, 0xde])
    expect(m.readU64(0x48)).toBe(0x1234n)
    // unaligned accesses work as well
    m.writeU32(0x101, 0x0a0b_0c0d)
    expect(m.readU32(0x101)).toBe(0x0a0b_0c0d)
  })

  it('maps guest-physical addresses onto the right region', () => {
    const m = twoRegions()
    m.writeU32(0x10_0ffc, 0x1122_3344)
    const high = m.regions.find((r) => r.base === 0x10_0000)!
    expect([...high.bytes.subarray(0xffc, 0x1000)]).toEqual([0x44, 0x33, 0x22, 0x11])
    expect(m.size).toBe(0x4000)
  })

  it('copies byte ranges across adjacent regions, but never gives a view that spans them', () => {
    const m = twoRegions()
    const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1)
    m.write(0xff8, data)
    expect([...m.readBytes(0xff8, 16)]).toEqual([...data])
    m.writeU64(0xffc, 0x8877_6655_4433_2211n) // a scalar straddling the boundary
    expect(m.readU64(0xffc)).toBe(0x8877_6655_4433_2211n)
    expect(m.readU32(0xffe)).toBe(0x6655_4433)
    expect(m.contains(0xff8, 16)).toBe(false)
    expect(m.isMapped(0xff8, 16)).toBe(true)
    expect(() => m.view(0xff8, 16)).toThrow(/crosses a region boundary/)
    expect(m.views(0xff8, 16).map((v) => v.length)).toEqual([8, 8])
  })

  it('throws a typed error for every access outside RAM', () => {
    const m = twoRegions()
    const outside: (() => unknown)[] = [
      () => m.readU8(0x2000),
      () => m.readU32(0x1ffe), // last two bytes of RAM plus two in the hole
      () => m.readU64(0x10_1ffc),
      () => m.writeU16(0x5000, 1),
      () => m.write(0x1ff0, new Uint8Array(32)),
      () => m.readBytes(0x10_0000 - 1, 2),
      () => m.fill(0x10_1000, 0x2000),
      () => m.readU8(-1),
      () => m.readU8(0.5),
      () => m.hostAddress(0x2000, 1),
    ]
    for (const f of outside) {
      let err: unknown
      try {
        f()
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(GuestMemoryError)
    }
    try {
      m.readU32(0x1ffe)
    } catch (e) {
      expect(e).toMatchObject({ address: 0x1ffe, length: 4 })
      expect((e as Error).message).toBe('guest range 0x1ffe+4 is outside guest RAM')
    }
    expect(m.readU8(0x1fff)).toBe(0) // the last byte is fine
  })

  it('refuses overlapping regions', () => {
    expect(() =>
      GuestMemory.allocate([
        { base: 0, size: 0x2000 },
        { base: 0x1000, size: 0x1000 },
      ]),
    ).toThrow(/overlap/)
  })

  it('hands shared regions to a GuestMemory of another thread that sees the same bytes', () => {
    const m = GuestMemory.allocate([{ base: 0x4000, size: 0x1000 }], { shared: true })
    m.writeU32(0x4010, 0xcafe_f00d)
    const ram = GuestMemory.from(m.describe())
    expect(ram.readU32(0x4010)).toBe(0xcafe_f00d)
    ram.writeU16(0x4020, 0x5aa5)
    expect(m.readU16(0x4020)).toBe(0x5aa5)
    expect(() => GuestMemory.allocate([{ base: 0, size: 0x1000 }]).describe()).toThrow(/neither shared nor native/)
  })
})

describe('x86 memory layout', () => {
  it('keeps RAM below the 3 GiB hole and continues at 4 GiB', () => {
    expect(x86MemoryLayout(256 * MiB).ram).toEqual([{ base: 0, size: 256 * MiB }])
    expect(x86MemoryLayout(3 * GiB).ram).toEqual([{ base: 0, size: 3 * GiB }])
    expect(x86MemoryLayout(5 * GiB).ram).toEqual([
      { base: 0, size: 3 * GiB },
      { base: 4 * GiB, size: 2 * GiB },
    ])
    expect(x86MemoryLayout(5 * GiB).lowRamEnd).toBe(0xc000_0000)
    expect(() => x86MemoryLayout(16 * MiB)).toThrow(/at least 64 MiB/)
    expect(() => x86MemoryLayout(256 * MiB + 1)).toThrow(/4 KiB pages/)
  })

  it('keeps the fixed boot structures apart and below the EBDA', () => {
    const L = X86_LAYOUT
    const areas: [string, number, number][] = [
      ['GDT', L.GDT, 8 * 8],
      ['IDT', L.IDT, 8],
      ['zero page', L.ZERO_PAGE, 0x1000],
      ['PML4', L.PML4, 0x1000],
      ['PDPT', L.PDPT, 0x1000],
      ['PDs', L.PD, L.PD_COUNT * 0x1000],
      ['cmdline', L.CMDLINE, L.CMDLINE_MAX],
    ]
    areas.sort((a, b) => a[1] - b[1])
    for (let i = 1; i < areas.length; i++) {
      const [prev, start, len] = areas[i - 1]!
      expect(start + len, `${prev} overlaps ${areas[i]![0]}`).toBeLessThanOrEqual(areas[i]![1])
    }
    const [, lastStart, lastLen] = areas.at(-1)!
    expect(lastStart + lastLen).toBeLessThanOrEqual(L.EBDA)
    expect(L.BOOT_STACK_TOP).toBeLessThanOrEqual(L.PML4)
  })

  it('splits RAM over NUMA nodes in 2 MiB units, around the hole', () => {
    const layout = x86MemoryLayout(5 * GiB)
    const nodes = nodeMemoryRanges(layout, 2)
    expect(nodes).toEqual([
      [{ base: 0, size: 2.5 * GiB }],
      [
        { base: 2.5 * GiB, size: 0.5 * GiB },
        { base: 4 * GiB, size: 2 * GiB },
      ],
    ])
    const odd = nodeMemoryRanges(x86MemoryLayout(1000 * MiB), 3)
    const sizes = odd.map((r) => r.reduce((n, x) => n + x.size, 0))
    expect(sizes.reduce((a, b) => a + b)).toBe(1000 * MiB)
    for (const r of odd) expect(r[0]!.base % (2 * MiB)).toBe(0)
    expect(() => nodeMemoryRanges(x86MemoryLayout(64 * MiB), 32)).toThrow(/too small for 32 NUMA nodes/)
  })

  it('gives each virtio-mmio device its own window and ISA IRQ', () => {
    expect(virtioMmioWindow(0)).toEqual({ index: 0, base: 0xd000_0000, size: 0x1000, irq: 5 })
    expect(virtioMmioWindow(1)).toMatchObject({ base: 0xd000_1000, irq: 6 })
    const irqs = Array.from({ length: 8 }, (_, i) => virtioMmioWindow(i).irq)
    expect(new Set(irqs).size).toBe(8)
    for (const irq of irqs) expect([0, 1, 2, 3, 4, 8, 9]).not.toContain(irq)
    expect(() => virtioMmioWindow(8)).toThrow(/only 8 devices/)
  })
})
