/**
 * The KernelView over a running guest's RAM: the direct map and the kernel image by arithmetic
 * (no KASLR, not relocatable: phys_base 0), every other kernel address (vmalloc, modules, BPF
 * maps) by a walk of the page tables of whatever mm CPU 0 runs with (the kernel half is shared by
 * all of them). Per-CPU areas are found by a scan of guest RAM (./percpu-scan.ts).
 */
import { type GuestMemory, GuestMemoryError } from '../vm/memory/guest-memory.js'
import type { Btf } from './btf/index.js'
import type { KernelView } from './kernel-view.js'
import { fixedKernelRanges, type KernelRanges, type PagingMode, readVirtual, translate, translateFixed } from './paging.js'
import type { PercpuAreas } from './percpu-scan.js'

const TWO32 = 2 ** 32

/** Offsets the page-walk root is read through: CPU 0's current task → active_mm → pgd. */
export interface RootPath {
  /** `.data..percpu` offset of pcpu_hot.current_task. */
  readonly currentTask: number
  readonly activeMm: number | undefined
  readonly mmPgd: number | undefined
}

export class GuestKernelView implements KernelView {
  readonly cpus: number
  readonly percpuOffsets: readonly bigint[]
  readonly mode: PagingMode
  readonly ranges: KernelRanges
  private readonly hiDirect: number
  private cr3: bigint | undefined

  /** `btf` is called on first use: sampling never needs it, reading BPF maps does. */
  constructor(
    readonly mem: GuestMemory,
    private readonly loadBtf: () => Btf,
    readonly areas: PercpuAreas,
    private readonly root: RootPath,
  ) {
    this.cpus = areas.pas.length
    this.percpuOffsets = areas.pas.map((pa) => areas.pageOffset + BigInt(pa))
    this.mode = { la57: areas.la57 }
    this.ranges = fixedKernelRanges(this.mode)
    this.hiDirect = Number(areas.pageOffset >> 32n)
  }

  get btf(): Btf {
    return this.loadBtf()
  }

  /** Physical address of CPU `cpu`'s per-CPU area (its copy of a variable is at + the variable's offset). */
  percpuPa(cpu: number): number {
    const pa = this.areas.pas[cpu]
    if (pa === undefined) throw new RangeError(`CPU ${cpu} is not one of the guest's ${this.cpus} CPUs`)
    return pa
  }

  percpuAddress(name: string, cpu: number): bigint {
    const v = this.btf.percpuVar(name)
    this.percpuPa(cpu) // a RangeError for a CPU the guest does not have
    return this.percpuOffsets[cpu]! + BigInt(v.offset)
  }

  /**
   * Physical address of a direct-map or kernel-image pointer given as its two 32-bit halves (how the
   * sampler reads pointers without a BigInt); -1 for NULL or any other address.
   */
  pointerPa(hi: number, lo: number): number {
    if (hi >= this.hiDirect && hi - this.hiDirect < 0x4000) return (hi - this.hiDirect) * TWO32 + lo
    // __START_KERNEL_map is 0xffffffff80000000: the image's pointers have hi 0xffffffff.
    if (hi === 0xffffffff && lo >= 0x80000000) return lo - 0x80000000 + Number(this.ranges.physBase)
    return -1
  }

  /** The u64 pointer at physical `pa`, as a physical address (pointerPa); -1 when unreadable. */
  readPointerPa(pa: number): number {
    try {
      return this.pointerPa(this.mem.readU32(pa + 4), this.mem.readU32(pa))
    } catch (e) {
      if (e instanceof GuestMemoryError) return -1
      throw e
    }
  }

  read(va: bigint, len: number): Buffer | undefined {
    try {
      const pa = translateFixed(va, this.ranges)
      if (pa !== undefined) return this.mem.isMapped(pa, len) ? Buffer.from(this.mem.readBytes(pa, len)) : undefined
      for (let attempt = 0; attempt < 2; attempt++) {
        const cr3 = this.pageTables(attempt > 0)
        if (cr3 === undefined) return undefined
        const got = readVirtual(this.mem, cr3, va, len, this.mode)
        if (got instanceof Uint8Array) return Buffer.from(got.buffer, got.byteOffset, got.length)
        if (!got.mapped && (got.reason === 'non-canonical' || got.reason === 'memory-released')) return undefined
      }
      return undefined
    } catch (e) {
      if (e instanceof GuestMemoryError) return undefined
      throw e
    }
  }

  write(va: bigint, data: Uint8Array): boolean {
    try {
      const pieces = this.physicalPieces(va, data.length)
      if (!pieces) return false
      let done = 0
      for (const [pa, n] of pieces) {
        this.mem.write(pa, data.subarray(done, done + n))
        done += n
      }
      return true
    } catch (e) {
      if (e instanceof GuestMemoryError) return false
      throw e
    }
  }

  /** [pa, length] pieces of [va, va+len), all translated before anything is written. */
  private physicalPieces(va: bigint, len: number): [number, number][] | undefined {
    const fixed = translateFixed(va, this.ranges)
    if (fixed !== undefined) return this.mem.isMapped(fixed, len) ? [[fixed, len]] : undefined
    for (let attempt = 0; attempt < 2; attempt++) {
      const cr3 = this.pageTables(attempt > 0)
      if (cr3 === undefined) return undefined
      const out: [number, number][] = []
      let done = 0
      while (done < len) {
        const t = translate(this.mem, cr3, va + BigInt(done), this.mode)
        if (!t.mapped) break
        const n = Math.min(len - done, t.pageSize - (t.pa % t.pageSize))
        if (!this.mem.isMapped(t.pa, n)) return undefined
        out.push([t.pa, n])
        done += n
      }
      if (done === len) return out
    }
    return undefined
  }

  /** The pgd of the mm CPU 0 runs with (cached; `refresh` reads it again, e.g. after that mm went). */
  private pageTables(refresh: boolean): bigint | undefined {
    if (this.cr3 !== undefined && !refresh) return this.cr3
    const { activeMm, mmPgd, currentTask } = this.root
    if (activeMm === undefined || mmPgd === undefined) return undefined
    const task = this.readPointerPa(this.percpuPa(0) + currentTask)
    const mm = task < 0 ? -1 : this.readPointerPa(task + activeMm)
    const pgd = mm < 0 ? -1 : this.readPointerPa(mm + mmPgd)
    if (pgd < 0 || pgd % 4096 !== 0 || !this.mem.isMapped(pgd, 4096)) return undefined
    this.cr3 = BigInt(pgd)
    return this.cr3
  }
}
