/**
 * Debugging a stuck guest (KTSTR_LOG=debug): read the words on top of a vCPU's stack through the
 * guest's own page tables (src/monitor/paging.ts), so return addresses can be matched against the
 * kernel's symbols.
 */
import { translate as walk } from '../../../../monitor/paging.js'
import type { GuestMemory } from '../../../memory/guest-memory.js'

/** Guest-physical address of `va`, or undefined where it is not mapped. */
export function translate(mem: GuestMemory, cr3: bigint, la57: boolean, va: bigint): bigint | undefined {
  const t = walk(mem, cr3, va, { la57 })
  return t.mapped ? BigInt(t.pa) : undefined
}

/** Up to `count` 8-byte words from `rsp` upward (stopping at an unmapped page). */
export function stackWords(mem: GuestMemory, cr3: bigint, la57: boolean, rsp: bigint, count: number): bigint[] {
  const out: bigint[] = []
  for (let i = 0; i < count; i++) {
    const pa = translate(mem, cr3, la57, rsp + BigInt(8 * i))
    if (pa === undefined || !mem.isMapped(Number(pa), 8)) break
    out.push(mem.readU64(Number(pa)))
  }
  return out
}
