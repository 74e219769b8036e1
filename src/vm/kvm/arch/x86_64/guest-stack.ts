/**
 * Debugging a stuck guest (KTSTR_LOG=debug): translate a guest virtual address through the
 * guest's own page tables (x86-64 4- or 5-level paging, Intel SDM vol. 3A §4.5) and read the
 * words on top of a vCPU's stack, so return addresses can be matched against the kernel's symbols.
 */
import type { GuestMemory } from '../../memory/guest-memory.js'

const PRESENT = 1n
const PAGE_SIZE_BIT = 0x80n
const ADDR_MASK = 0x000f_ffff_ffff_f000n

/** Guest-physical address of `va`, or undefined where it is not mapped. */
export function translate(mem: GuestMemory, cr3: bigint, la57: boolean, va: bigint): bigint | undefined {
  let table = cr3 & ADDR_MASK
  for (let level = la57 ? 5 : 4; level >= 1; level--) {
    const shift = 12n + 9n * BigInt(level - 1)
    const index = (va >> shift) & 0x1ffn
    const at = Number(table + index * 8n)
    if (!mem.isMapped(at, 8)) return undefined
    const entry = new DataView(mem.readBytes(at, 8).buffer).getBigUint64(0, true)
    if (!(entry & PRESENT)) return undefined
    const frame = entry & ADDR_MASK
    if (level === 1 || ((level === 2 || level === 3) && entry & PAGE_SIZE_BIT)) {
      const offsetMask = (1n << shift) - 1n
      return (frame & ~offsetMask) | (va & offsetMask)
    }
    table = frame
  }
  return undefined
}

/** Up to `count` 8-byte words from `rsp` upward (stopping at an unmapped page). */
export function stackWords(mem: GuestMemory, cr3: bigint, la57: boolean, rsp: bigint, count: number): bigint[] {
  const out: bigint[] = []
  for (let i = 0; i < count; i++) {
    const pa = translate(mem, cr3, la57, rsp + BigInt(8 * i))
    if (pa === undefined || !mem.isMapped(Number(pa), 8)) break
    out.push(new DataView(mem.readBytes(Number(pa), 8).buffer).getBigUint64(0, true))
  }
  return out
}
