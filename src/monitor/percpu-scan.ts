/**
 * Finding each CPU's per-CPU area in guest RAM without symbols. The kernel has no
 * `__per_cpu_offset` address for us, but its BTF gives per-CPU variable offsets, and x86-64's
 * `this_cpu_off` holds, on each CPU, that CPU's `__per_cpu_offset`: the direct-map address of its
 * area (the first chunk is embedded in the direct map, units page-aligned). So a page at physical
 * `pa` is CPU n's area when the u64 at `pa + off(this_cpu_off)` is `PAGE_OFFSET + pa` and
 * `pcpu_hot.cpu_number` there is n. Both PAGE_OFFSETs are tried: the one that matches is the
 * paging mode (4- or 5-level).
 */
import type { GuestMemory } from '../vm/memory/guest-memory.js'
import type { Btf } from './btf/index.js'
import { PAGE_OFFSET_4LEVEL, PAGE_OFFSET_5LEVEL, PAGE_SIZE } from './paging.js'

export interface PercpuAreas {
  /** Physical address of each CPU's area, by cpu id. */
  readonly pas: readonly number[]
  /** The direct map's base this kernel uses (it says the paging mode). */
  readonly pageOffset: bigint
  readonly la57: boolean
}

export interface PercpuOffsets {
  /** Offset of `this_cpu_off` in `.data..percpu`. */
  readonly thisCpuOff: number
  /** Offset of `pcpu_hot.cpu_number` in `.data..percpu`. */
  readonly cpuNumber: number
}

/** The BTF offsets the scan needs; a BtfError when the kernel lacks them. */
export function percpuScanOffsets(btf: Btf): PercpuOffsets {
  const hot = btf.percpuVar('pcpu_hot')
  return { thisCpuOff: btf.percpuVar('this_cpu_off').offset, cpuNumber: hot.offset + btf.member(hot.type, 'cpu_number').offset }
}

const TWO32 = 2 ** 32
const HI_4LEVEL = Number(PAGE_OFFSET_4LEVEL >> 32n)
const HI_5LEVEL = Number(PAGE_OFFSET_5LEVEL >> 32n)

/**
 * Scan the pages of guest RAM from the top down: memblock allocates top-down, so the areas lie near
 * the top of their node's RAM, and the scan stops once `expectCpus` are found (each page read costs
 * the host a page fault on first touch: a full scan of 1 GiB takes seconds). Areas with cpu ids
 * 0 … n-1 all found give n CPUs; a gap (a CPU not found) ends the list there. Undefined when no CPU
 * 0 is found (the kernel is not up yet, or this is not an x86-64 Linux).
 */
export function scanPercpuAreas(mem: GuestMemory, offs: PercpuOffsets, expectCpus = Number.POSITIVE_INFINITY): PercpuAreas | undefined {
  const steps = scanSteps(mem, offs, expectCpus)
  for (;;) {
    const s = steps.next()
    if (s.done) return s.value
  }
}

/**
 * The same scan, giving the event loop a turn after every `SCAN_STEP_BYTES`: in the kvm backend the
 * thread that scans also serves the guest's device accesses, and seconds without them stall every
 * vCPU that touches a device. Undefined as well when guest RAM is released meanwhile (the steps
 * check it each time they resume).
 */
export async function scanPercpuAreasYielding(mem: GuestMemory, offs: PercpuOffsets, expectCpus = Number.POSITIVE_INFINITY): Promise<PercpuAreas | undefined> {
  const steps = scanSteps(mem, offs, expectCpus)
  for (;;) {
    const s = steps.next()
    if (s.done) return s.value
    await new Promise((r) => setImmediate(r))
  }
}

/** Bytes scanned between two turns of the event loop. */
const SCAN_STEP_BYTES = 16 * 2 ** 20

function* scanSteps(mem: GuestMemory, offs: PercpuOffsets, expectCpus: number): Generator<void, PercpuAreas | undefined> {
  const found: number[] = []
  let hiBase = 0
  let count = 0
  let sinceStep = 0
  const reach = Math.max(offs.thisCpuOff + 8, offs.cpuNumber + 4)
  for (const r of [...mem.regions].reverse()) {
    const b = r.bytes
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
    // Regions start page-aligned in guest-physical space (RAM below/above the PCI hole).
    const first = (PAGE_SIZE - (r.base % PAGE_SIZE)) % PAGE_SIZE
    const last = first + Math.floor((b.byteLength - reach - first) / PAGE_SIZE) * PAGE_SIZE
    for (let off = last; off >= first; off -= PAGE_SIZE) {
      if ((sinceStep += PAGE_SIZE) >= SCAN_STEP_BYTES) {
        sinceStep = 0
        yield
        if (mem.isReleased) return undefined
      }
      const pa = r.base + off
      const lo = pa % TWO32
      if (dv.getUint32(off + offs.thisCpuOff, true) !== lo) continue
      const hi = dv.getUint32(off + offs.thisCpuOff + 4, true) - Math.floor(pa / TWO32)
      if (hi !== HI_4LEVEL && hi !== HI_5LEVEL) continue
      if (hiBase !== 0 && hi !== hiBase) continue
      const cpu = dv.getInt32(off + offs.cpuNumber, true)
      if (cpu < 0 || cpu > 8191 || found[cpu] !== undefined) continue
      hiBase = hi
      found[cpu] = pa
      if (++count >= expectCpus) break
    }
    if (count >= expectCpus) break
  }
  if (found[0] === undefined) return undefined
  let n = 0
  while (found[n] !== undefined) n++
  const la57 = hiBase === HI_5LEVEL
  return { pas: found.slice(0, n), pageOffset: la57 ? PAGE_OFFSET_5LEVEL : PAGE_OFFSET_4LEVEL, la57 }
}

/**
 * Whether `areas` are this guest's per-CPU areas for `cpus` CPUs: the scan's own test, made at the
 * known pages only (a hint from an earlier boot of the same kernel and shape, where the areas land
 * at the same addresses: no KASLR). False as soon as one page does not pass.
 */
export function checkPercpuAreas(mem: GuestMemory, offs: PercpuOffsets, areas: PercpuAreas, cpus: number): boolean {
  if (areas.pas.length < cpus) return false
  for (let cpu = 0; cpu < cpus; cpu++) {
    const pa = areas.pas[cpu]!
    if (!mem.contains(pa + offs.thisCpuOff, 8) || !mem.contains(pa + offs.cpuNumber, 4)) return false
    if (mem.readU64(pa + offs.thisCpuOff) !== areas.pageOffset + BigInt(pa)) return false
    if (mem.readU32(pa + offs.cpuNumber) !== cpu) return false
  }
  return true
}
