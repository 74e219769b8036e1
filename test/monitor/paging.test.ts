// The host's page-table walk over synthetic x86-64 page tables built in a Buffer-backed GuestMemory:
// every level, 4 KiB / 2 MiB / 1 GiB pages, not-present entries, tables outside RAM, 5-level paging,
// and the kernel's fixed ranges.
import { describe, expect, it } from 'vitest'
import {
  fixedKernelRanges,
  isCanonical,
  PAGE_OFFSET_4LEVEL,
  PAGE_OFFSET_5LEVEL,
  readVirtual,
  START_KERNEL_MAP,
  translate,
  translateFixed,
  translateKernel,
} from '../../src/monitor/paging.js'
import { GuestMemory } from '../../src/vm/memory/guest-memory.js'

const MiB = 2 ** 20
const P = 1n // present
const RW = 2n
const PS = 0x80n // page size
const NX = 1n << 63n

/** 64 MiB of guest RAM and a bump allocator of zeroed 4 KiB tables from 1 MiB up. */
function machine() {
  const mem = GuestMemory.allocate([{ base: 0, size: 64 * MiB }])
  let next = MiB
  const table = () => {
    const at = next
    next += 4096
    return at
  }
  /** Sets the entry of `va` at `level` in `tableAt`. */
  const set = (tableAt: number, level: number, va: bigint, entry: bigint) => {
    const index = Number((va >> (12n + 9n * BigInt(level - 1))) & 0x1ffn)
    mem.writeU64(tableAt + index * 8, entry)
  }
  /** Maps `va` → `pa` down to `leafLevel` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB), creating tables as needed. */
  const map = (root: number, top: number, va: bigint, pa: number, leafLevel = 1, flags = P | RW) => {
    let t = root
    for (let level = top; level > leafLevel; level--) {
      const index = Number((va >> (12n + 9n * BigInt(level - 1))) & 0x1ffn)
      const e = mem.readU64(t + index * 8)
      if (e & P) t = Number(e & 0x000f_ffff_ffff_f000n)
      else {
        const nt = table()
        mem.writeU64(t + index * 8, BigInt(nt) | P | RW)
        t = nt
      }
    }
    set(t, leafLevel, va, BigInt(pa) | flags | (leafLevel > 1 ? PS : 0n))
  }
  return { mem, table, set, map }
}

const four = { la57: false }
const five = { la57: true }

describe('x86-64 page-table walk (4-level)', () => {
  it('translates a 4 KiB page through PML4, PDPT, PD and PT, keeping the offset and ignoring NX and CR3 flags', () => {
    const m = machine()
    const root = m.table()
    const va = 0x7f12_3456_7000n
    m.map(root, 4, va, 0x2_3000, 1, P | RW | NX)
    m.mem.writeU32(0x2_3abc, 0xfeedbeef)
    expect(translate(m.mem, BigInt(root) | 0x18n, va + 0xabcn, four)).toEqual({ mapped: true, pa: 0x2_3abc, pageSize: 4096 })
    expect(readVirtual(m.mem, BigInt(root), va + 0xabcn, 4, four)).toEqual(Uint8Array.of(0xef, 0xbe, 0xed, 0xfe))
  })

  it('stops at a 2 MiB page in the PD and a 1 GiB page in the PDPT', () => {
    const m = machine()
    const root = m.table()
    m.map(root, 4, 0xffff_c900_0020_0000n, 0x40_0000, 2)
    expect(translate(m.mem, BigInt(root), 0xffff_c900_0021_2345n, four)).toEqual({ mapped: true, pa: 0x41_2345, pageSize: 2 * MiB })
    // A 1 GiB page frame above guest RAM: the walk still answers (the tables are in RAM).
    m.map(root, 4, 0xffff_8880_4000_0000n, 0x1_4000_0000, 3)
    expect(translate(m.mem, BigInt(root), 0xffff_8880_7fff_fff8n, four)).toEqual({ mapped: true, pa: 0x1_7fff_fff8, pageSize: 1024 * MiB })
    // …but reading it does not.
    expect(readVirtual(m.mem, BigInt(root), 0xffff_8880_7fff_fff8n, 8, four)).toEqual({ mapped: false, reason: 'page-not-in-ram', level: 0 })
  })

  it('reads across a page boundary from two discontiguous physical pages', () => {
    const m = machine()
    const root = m.table()
    m.map(root, 4, 0x40_0000n, 0x30_0000)
    m.map(root, 4, 0x40_1000n, 0x10_0000 + 0x5000)
    m.mem.write(0x30_0ffe, Uint8Array.of(1, 2))
    m.mem.write(0x10_5000, Uint8Array.of(3, 4))
    expect(readVirtual(m.mem, BigInt(root), 0x40_0ffen, 4, four)).toEqual(Uint8Array.of(1, 2, 3, 4))
  })

  it('answers "not mapped" with the level where the walk stopped, for each level', () => {
    const m = machine()
    const root = m.table()
    const va = 0x1234_5678_9000n
    expect(translate(m.mem, BigInt(root), va, four)).toEqual({ mapped: false, reason: 'not-present', level: 4 })
    m.map(root, 4, va, 0x5000)
    // Clear the present bit at each level in turn, from the leaf up.
    const entries: number[] = []
    let t = root
    for (let level = 4; level >= 1; level--) {
      const at = t + Number((va >> (12n + 9n * BigInt(level - 1))) & 0x1ffn) * 8
      entries.push(at)
      t = Number(m.mem.readU64(at) & 0x000f_ffff_ffff_f000n)
    }
    for (const [i, at] of entries.entries()) {
      const e = m.mem.readU64(at)
      m.mem.writeU64(at, e & ~P)
      expect(translate(m.mem, BigInt(root), va, four)).toEqual({ mapped: false, reason: 'not-present', level: 4 - i })
      expect(readVirtual(m.mem, BigInt(root), va, 8, four)).toEqual({ mapped: false, reason: 'not-present', level: 4 - i })
      m.mem.writeU64(at, e)
    }
    expect(translate(m.mem, BigInt(root), va, four)).toMatchObject({ mapped: true, pa: 0x5000 })
  })

  it('a table outside guest RAM (a bogus CR3 or entry) and a non-canonical address are answers, not throws', () => {
    const m = machine()
    expect(translate(m.mem, 0x8000_0000n, 0x1000n, four)).toEqual({ mapped: false, reason: 'table-not-in-ram', level: 4 })
    const root = m.table()
    m.set(root, 4, 0x1000n, 0xdead_0000_0000n | P)
    expect(translate(m.mem, BigInt(root), 0x1000n, four)).toEqual({ mapped: false, reason: 'table-not-in-ram', level: 3 })
    expect(translate(m.mem, BigInt(root), 0x0000_8000_0000_0000n, four)).toEqual({ mapped: false, reason: 'non-canonical', level: 0 })
    expect(isCanonical(0xffff_8000_0000_0000n, four)).toBe(true)
    expect(isCanonical(0xff00_0000_0000_0000n, four)).toBe(false)
    expect(isCanonical(0xff00_0000_0000_0000n, five)).toBe(true)
  })

  it('memory released with its VM: "memory-released", not a fault', () => {
    const m = machine()
    const root = m.table()
    m.map(root, 4, 0x1000n, 0x2000)
    m.mem.release()
    expect(translate(m.mem, BigInt(root), 0x1000n, four)).toEqual({ mapped: false, reason: 'memory-released', level: 0 })
    expect(() => m.mem.readU64(0x2000)).toThrow('guest range 0x2000+8 is gone: the VM has exited and its RAM was unmapped')
  })
})

describe('5-level paging (LA57)', () => {
  it('walks PML5 first; the same tables read as 4-level give another answer', () => {
    const m = machine()
    const root = m.table()
    const va = 0xff11_0000_1234_5000n // in the 5-level direct map
    m.map(root, 5, va, 0x7000)
    expect(translate(m.mem, BigInt(root), va + 0x10n, five)).toEqual({ mapped: true, pa: 0x7010, pageSize: 4096 })
    expect(translate(m.mem, BigInt(root), va, four)).toEqual({ mapped: false, reason: 'non-canonical', level: 0 })
    // A user address only 5-level paging has (bit 55 set): PML5 entry 0xab is empty; 4-level refuses it.
    expect(translate(m.mem, BigInt(root), 0x00ab_0000_0000_0000n, five)).toEqual({ mapped: false, reason: 'not-present', level: 5 })
    expect(translate(m.mem, BigInt(root), 0x00ab_0000_0000_0000n, four)).toEqual({ mapped: false, reason: 'non-canonical', level: 0 })
    expect(translate(m.mem, BigInt(root), 0x0100_0000_0000_0000n, five)).toEqual({ mapped: false, reason: 'non-canonical', level: 0 })
    m.map(root, 5, 0x00ab_0000_0000_0000n, 0x20_0000, 2)
    expect(translate(m.mem, BigInt(root), 0x00ab_0000_0000_1234n, five)).toEqual({ mapped: true, pa: 0x20_1234, pageSize: 2 * MiB })
  })
})

describe("the kernel's fixed ranges", () => {
  it('direct map and kernel image translate without a walk; other addresses do not', () => {
    const r4 = fixedKernelRanges(four, 0x20_0000n)
    expect(translateFixed(PAGE_OFFSET_4LEVEL + 0x1234n, r4)).toBe(0x1234)
    expect(translateFixed(START_KERNEL_MAP + 0x100_0000n, r4)).toBe(0x120_0000)
    expect(translateFixed(0xffff_c900_0000_0000n, r4)).toBeUndefined() // vmalloc
    expect(translateFixed(START_KERNEL_MAP + 0x2000_0000n, r4)).toBeUndefined() // modules, past KERNEL_IMAGE_SIZE
    expect(translateFixed(PAGE_OFFSET_5LEVEL + 0x5000n, fixedKernelRanges(five))).toBe(0x5000)
  })

  it('translateKernel takes the shortcut where it applies and walks elsewhere', () => {
    const m = machine()
    const root = m.table()
    m.map(root, 4, 0xffff_c900_0000_0000n, 0x9000)
    const ranges = fixedKernelRanges(four)
    // No page tables map the direct map here: only the shortcut can answer.
    expect(translateKernel(m.mem, BigInt(root), PAGE_OFFSET_4LEVEL + 0x42n, four, ranges)).toEqual({ mapped: true, pa: 0x42, pageSize: 4096 })
    expect(translateKernel(m.mem, BigInt(root), PAGE_OFFSET_4LEVEL + 0x42n, four)).toEqual({ mapped: false, reason: 'not-present', level: 4 })
    expect(translateKernel(m.mem, BigInt(root), 0xffff_c900_0000_0008n, four, ranges)).toEqual({ mapped: true, pa: 0x9008, pageSize: 4096 })
  })
})
