// The monitor's view of a guest kernel over synthetic guest RAM: finding per-CPU areas by their
// self-pointing this_cpu_off (4- and 5-level direct maps, decoys, RAM in two regions), the field
// layout from BTF (a missing field is one line; event counters noted on pre-6.15 kernels), and
// reads/writes by kernel virtual address (direct map, kernel image, vmalloc through page tables).
import { describe, expect, it } from 'vitest'
import { resolveLayout } from '../../src/monitor/layout.js'
import { GuestKernelView } from '../../src/monitor/open-view.js'
import { PAGE_OFFSET_4LEVEL, PAGE_OFFSET_5LEVEL, START_KERNEL_MAP } from '../../src/monitor/paging.js'
import { percpuScanOffsets, scanPercpuAreas, scanPercpuAreasYielding } from '../../src/monitor/percpu-scan.js'
import { fakeGuest, kernelBtf, MiB, OFF, TASK } from './fake-kernel.js'

const btf = kernelBtf()
const offs = percpuScanOffsets(btf)

function openView(g: ReturnType<typeof fakeGuest>, cpus: number) {
  const layout = resolveLayout(btf)
  if (!layout.ok) throw new Error(layout.reason)
  const areas = scanPercpuAreas(g.mem, offs, cpus)!
  const l = layout.layout
  return new GuestKernelView(g.mem, () => btf, areas, { currentTask: l.currentTask, activeMm: l.task.activeMm, mmPgd: l.mmPgd })
}

describe('per-CPU areas found in guest RAM', () => {
  it('finds each CPU by this_cpu_off == PAGE_OFFSET + pa and pcpu_hot.cpu_number, in cpu order, on 4-level paging', () => {
    const g = fakeGuest({ cpus: 3, areaAt: (cpu) => [20, 9, 40][cpu]! * MiB })
    expect(offs).toEqual({ thisCpuOff: OFF.thisCpuOff, cpuNumber: OFF.pcpuHot + 12 })
    expect(scanPercpuAreas(g.mem, offs)).toEqual({ pas: [20 * MiB, 9 * MiB, 40 * MiB], pageOffset: PAGE_OFFSET_4LEVEL, la57: false })
  })

  it('tells 5-level paging by the direct map base the areas point at', () => {
    const g = fakeGuest({ cpus: 2, la57: true })
    expect(scanPercpuAreas(g.mem, offs)).toMatchObject({ pas: [8 * MiB, 9 * MiB], pageOffset: PAGE_OFFSET_5LEVEL, la57: true })
  })

  it('ignores pages whose this_cpu_off points elsewhere, and stops at a missing cpu id', () => {
    const g = fakeGuest({ cpus: 2 })
    // A decoy: cpu_number 2 but this_cpu_off pointing at another page; then a real CPU 3 with no CPU 2.
    g.mem.writeU64(30 * MiB + OFF.thisCpuOff, g.va(31 * MiB))
    g.mem.writeU32(30 * MiB + OFF.pcpuHot + 12, 2)
    g.mem.writeU64(40 * MiB + OFF.thisCpuOff, g.va(40 * MiB))
    g.mem.writeU32(40 * MiB + OFF.pcpuHot + 12, 3)
    expect(scanPercpuAreas(g.mem, offs)?.pas).toEqual([8 * MiB, 9 * MiB])
  })

  it('scans RAM above 4 GiB (the high half of the u64 carries the address bits)', () => {
    const high = 4 * 2 ** 30
    const g = fakeGuest({
      cpus: 2,
      regions: [
        { base: 0, size: 64 * MiB },
        { base: high, size: 16 * MiB },
      ],
      areaAt: (cpu) => (cpu === 1 ? high + 2 * MiB : 8 * MiB),
    })
    expect(scanPercpuAreas(g.mem, offs)?.pas).toEqual([8 * MiB, high + 2 * MiB])
  })

  it('finds nothing in RAM of a kernel that is not up yet', () => {
    expect(scanPercpuAreas(fakeGuest({ cpus: 0 }).mem, offs)).toBeUndefined()
  })

  it('the yielding scan finds the same areas while the event loop keeps its turns (the kvm backend serves devices there)', async () => {
    const g = fakeGuest({ cpus: 2 })
    let turns = 0
    let go = true
    const tick = () => {
      turns++
      if (go) setImmediate(tick)
    }
    setImmediate(tick)
    // Top down from 64 MiB to CPU 1's area at 9 MiB: 55 MiB, 3 steps of 16 MiB.
    const areas = await scanPercpuAreasYielding(g.mem, offs, 2)
    go = false
    expect(areas).toEqual(scanPercpuAreas(g.mem, offs, 2))
    expect(areas?.pas).toEqual([8 * MiB, 9 * MiB])
    expect(turns).toBeGreaterThanOrEqual(3)
  })

  it('the yielding scan ends with nothing when guest RAM is released between its steps', async () => {
    const g = fakeGuest({ cpus: 2 })
    setImmediate(() => g.mem.release())
    expect(await scanPercpuAreasYielding(g.mem, offs, 2)).toBeUndefined()
  })
})

describe('the field layout from BTF', () => {
  it('resolves every sampled field and notes the missing sched_ext event counters of a pre-6.15 kernel', () => {
    const r = resolveLayout(btf)
    expect(r.ok && r.layout.rq).toEqual({ nrRunning: 0, clock: 8, curr: 16, scxNrRunning: 144, localDsqNr: 80, runnableList: 128 })
    expect(r.ok && r.layout.task).toEqual({ pid: 0, comm: 8, commLen: 16, policy: 4, runnableAt: 48, runnableNode: 32, activeMm: 64 })
    expect(r.ok && r.layout.eventsNote).toBe('no sched_ext event counters: this kernel has none (they came in Linux 6.15)')
    const newer = resolveLayout(kernelBtf({ events: true }))
    expect(newer.ok && newer.layout.eventsNote).toBeUndefined()
  })

  it('names the one field a kernel lacks', () => {
    expect(resolveLayout(kernelBtf({ noLocalDsq: true }))).toEqual({
      ok: false,
      reason: "the guest kernel's BTF does not fit the monitor: struct rq has no scx.local_dsq.nr (struct rq: struct scx_dispatch_q has no member 'nr' (in 'scx.local_dsq.nr'))",
    })
  })
})

describe('reading the kernel by virtual address', () => {
  it('reads the direct map and the kernel image by arithmetic, and per-CPU variables by name', () => {
    const g = fakeGuest({ cpus: 2 })
    const v = openView(g, 2)
    g.mem.write(12 * MiB, Buffer.from('direct'))
    g.mem.write(16 * MiB + 5, Buffer.from('image'))
    expect(v.read(PAGE_OFFSET_4LEVEL + BigInt(12 * MiB), 6)?.toString()).toBe('direct')
    expect(v.read(START_KERNEL_MAP + BigInt(16 * MiB + 5), 5)?.toString()).toBe('image')
    expect(v.percpuAddress('runqueues', 1)).toBe(PAGE_OFFSET_4LEVEL + BigInt(9 * MiB + OFF.runqueues))
    expect(v.percpuOffsets).toEqual([PAGE_OFFSET_4LEVEL + BigInt(8 * MiB), PAGE_OFFSET_4LEVEL + BigInt(9 * MiB)])
    expect(() => v.percpuAddress('runqueues', 2)).toThrow('CPU 2 is not one of the guest')
    expect(() => v.percpuAddress('nope', 0)).toThrow("no per-CPU variable 'nope'")
    expect(v.read(PAGE_OFFSET_4LEVEL + BigInt(64 * MiB - 2), 4)).toBeUndefined() // runs past RAM
    expect(v.write(PAGE_OFFSET_4LEVEL + BigInt(12 * MiB), Buffer.from('DI'))).toBe(true)
    expect(Buffer.from(g.mem.readBytes(12 * MiB, 6)).toString()).toBe('DIrect')
  })

  it('walks the page tables of the mm CPU 0 runs with for a vmalloc address, and says undefined where nothing is mapped', () => {
    const g = fakeGuest({ cpus: 1 })
    // CPU 0's current task → active_mm → pgd; one 4 KiB page mapped at a vmalloc address.
    const pgd = g.alloc(4096)
    const [pud, pmd, pt] = [g.alloc(4096), g.alloc(4096), g.alloc(4096)]
    const page = g.alloc(4096)
    const mm = g.alloc(64)
    const task = g.task({ pid: 1, comm: 'init' })
    g.mem.writeU64(mm + 8, g.va(pgd))
    g.mem.writeU64(task + TASK.activeMm, g.va(mm))
    g.mem.writeU64(g.areas[0]! + OFF.pcpuHot, g.va(task))
    const vmalloc = 0xffff_c900_0000_3000n
    const idx = (level: number) => Number((vmalloc >> BigInt(12 + 9 * (level - 1))) & 0x1ffn)
    g.mem.writeU64(pgd + idx(4) * 8, BigInt(pud) | 3n)
    g.mem.writeU64(pud + idx(3) * 8, BigInt(pmd) | 3n)
    g.mem.writeU64(pmd + idx(2) * 8, BigInt(pt) | 3n)
    g.mem.writeU64(pt + idx(1) * 8, BigInt(page) | 3n)
    g.mem.write(page + 0x10, Buffer.from('vmalloc'))
    const v = openView(g, 1)
    expect(v.read(vmalloc + 0x10n, 7)?.toString()).toBe('vmalloc')
    expect(v.write(vmalloc + 0x10n, Buffer.from('V'))).toBe(true)
    expect(Buffer.from(g.mem.readBytes(page + 0x10, 2)).toString()).toBe('Vm')
    expect(v.read(vmalloc + 0x1000n, 4)).toBeUndefined() // next page: not present
    expect(v.write(vmalloc + 0xff8n, Buffer.alloc(16))).toBe(false) // crosses into it: nothing written
    expect(g.mem.readU64(page + 0xff8)).toBe(0n)
    expect(v.read(0x0000_8000_0000_0000n, 8)).toBeUndefined() // not canonical
  })

  it('answers undefined and false, never throws, once the VM is gone', () => {
    const g = fakeGuest({ cpus: 1 })
    const v = openView(g, 1)
    g.mem.release()
    expect(v.read(PAGE_OFFSET_4LEVEL + 4096n, 8)).toBeUndefined()
    expect(v.read(0xffff_c900_0000_0000n, 8)).toBeUndefined()
    expect(v.write(PAGE_OFFSET_4LEVEL + 4096n, Buffer.alloc(8))).toBe(false)
    expect(v.readPointerPa(4096)).toBe(-1)
  })
})
