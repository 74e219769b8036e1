// Guest RAM above 4 GiB without KVM: the kvm backend's real mapping (an 8 GiB guest: 3 GiB below
// the MMIO hole, 5 GiB from 4 GiB up, each range one MAP_NORESERVE mapping seen through views of
// at most 2 GiB), read and written through GuestMemory and through a second GuestMemory built from its description (as a blk thread builds it).
import { describe, expect, it } from 'vitest'
import { KtstrError } from '../../../src/util/errors.js'
import { checkGuestFitsHost, mapHostRam, VIEW_CHUNK } from '../../../src/vm/kvm/memory/host-ram.js'
import { GiB, MiB, x86MemoryLayout } from '../../../src/vm/kvm/memory/layout.js'
import { GuestMemory } from '../../../src/vm/memory/guest-memory.js'
import { newMaps, resources } from './resources.js'

const hex = (n: bigint) => n.toString(16)

describe('guest RAM in host memory', () => {
  it('an 8 GiB guest: bytes at every offset above 4 GiB, across view boundaries, through both RAM APIs', () => {
    const layout = x86MemoryLayout(8 * GiB)
    const before = resources()
    const ram = mapHostRam(layout, 8 * GiB)
    try {
      expect(ram.slots.map((s) => [s.base, s.size])).toEqual([
        [0, 3 * GiB],
        [4 * GiB, 5 * GiB],
      ])
      // The two mappings, as /proc/self/maps shows them (untouched, MAP_NORESERVE).
      const mapped = newMaps(before).filter((l) => ram.slots.some((s) => l.startsWith(`${hex(s.hostAddress)}-`)))
      expect(mapped).toHaveLength(2)

      const mem = ram.memory
      expect(mem.size).toBe(8 * GiB)
      const top = 4 * GiB + 5 * GiB
      for (const gpa of [4 * GiB, 4 * GiB + 4 * GiB + 123, top - 8]) {
        mem.writeU64(gpa, BigInt(gpa) * 3n)
        expect(mem.readU64(gpa)).toBe(BigInt(gpa) * 3n)
      }
      // A write across the view boundary at 6 GiB (4 GiB + one 2 GiB view), and its host pointer.
      const edge = 4 * GiB + VIEW_CHUNK - 3
      const data = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff)
      mem.write(edge, data)
      expect(mem.readBytes(edge, 4096)).toEqual(data)
      expect(mem.readU32(edge)).toBe(new DataView(data.buffer).getUint32(0, true))
      expect(mem.contains(edge, 4096)).toBe(true)
      expect(mem.hostAddress(edge, 4096)).toBe(ram.slots[1]!.hostAddress + BigInt(VIEW_CHUNK - 3))
      // The MMIO hole and the end of RAM stay outside.
      expect(mem.contains(3 * GiB - 8, 16)).toBe(false)
      expect(() => mem.readU8(top)).toThrow(/outside guest RAM/)

      // The blk thread's view of the same RAM (GuestMemory.from(describe())).
      const thread = GuestMemory.from(mem.describe())
      expect(thread.readU64(top - 8)).toBe(BigInt(top - 8) * 3n)
      const back = new Uint8Array(4096)
      thread.read(edge, back)
      expect(back).toEqual(data)
      expect(thread.hostAddress(edge, 4096)).toBe(mem.hostAddress(edge, 4096))
      thread.write(edge + 1, Uint8Array.of(0xee, 0xff))
      expect(mem.readU16(edge + 1)).toBe(0xffee)
      expect(() => thread.read(3 * GiB - 8, new Uint8Array(16))).toThrow(/outside guest RAM/)
    } finally {
      ram.unmap()
    }
    expect(newMaps(before).filter((l) => ram.slots.some((s) => l.startsWith(`${hex(s.hostAddress)}-`)))).toEqual([])
  })

  it('a guest bigger than the host: one line naming the limit', () => {
    const fail = (() => {
      try {
        checkGuestFitsHost(12 * GiB, 8 * GiB - 300 * MiB)
      } catch (e) {
        return e
      }
    })()
    expect(fail).toBeInstanceOf(KtstrError)
    expect((fail as Error).message).toBe("guest memory of 12288 MiB is more than this host's 7892 MiB of RAM; ask for at most 7892 MiB")
    expect(() => mapHostRam(x86MemoryLayout(16 * GiB), 8 * GiB)).toThrow(/more than this host's 8192 MiB/)
  })
})
