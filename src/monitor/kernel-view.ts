/**
 * What the monitor reads the guest kernel through: guest memory addressed by kernel virtual
 * address, the kernel's BTF, and each CPU's per-CPU offset. Everything read is a copy: the guest
 * keeps running while the host reads, so a value may be stale or torn, never a crash.
 */
import type { Btf } from './btf/index.js'

export interface KernelView {
  readonly btf: Btf
  /** CPUs whose per-CPU area was found (cpu ids 0 … cpus-1). */
  readonly cpus: number
  /** `__per_cpu_offset[cpu]`: a per-CPU variable of CPU `cpu` is at this + the variable's offset in `.data..percpu`. */
  readonly percpuOffsets: readonly bigint[]
  /** `len` bytes at kernel virtual address `va` (direct map, kernel image, vmalloc and the rest by a page walk); undefined when any of it is not mapped. */
  read(va: bigint, len: number): Buffer | undefined
  /** Write `data` at kernel virtual address `va`; false (nothing written) when any of it is not mapped. */
  write(va: bigint, data: Uint8Array): boolean
  /** Address of CPU `cpu`'s copy of the per-CPU variable `name` (from the `.data..percpu` DATASEC); throws a BtfError when the kernel has no such variable. */
  percpuAddress(name: string, cpu: number): bigint
}
