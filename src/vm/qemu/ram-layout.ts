/**
 * Where QEMU's `pc` machine (i440fx, the one args.ts asks for) puts guest RAM in guest-physical
 * space, from QEMU's own rules (hw/i386/pc_piix.c, pc_init1; the same from QEMU 2.x to 7.2):
 *
 * - The machine's RAM is one block: the `-machine memory-backend=` backend, or with `-numa` the
 *   nodes' memdevs concatenated in node order (hw/core/numa.c).
 * - Its first `below4g` bytes are seen at guest-physical 0, the rest at 4 GiB. `below4g` is all of
 *   RAM when RAM is under max-ram-below-4g (3.5 GiB by default); from 3.5 GiB up it is cut to
 *   3 GiB (gigabyte_align), so the part above 4 GiB starts on a 1 GiB boundary of RAM.
 *
 * Firmware overlays (VGA at 0xa0000, option ROMs and the BIOS copy up to 1 MiB) shadow the RAM
 * beneath them for the guest; the backing file keeps what the guest last wrote there.
 * test/vm/qemu-ram.test.ts checks the map in real guests (markers found at /proc/self/pagemap's
 * addresses, below and above 4 GiB, on one and two nodes).
 */
const GiB = 2 ** 30

/** QEMU's default max-ram-below-4g for `pc`. */
export const PC_MAX_RAM_BELOW_4G = 0xe000_0000
/** Where RAM below 4 GiB stops once RAM reaches PC_MAX_RAM_BELOW_4G. */
export const PC_GIGABYTE_ALIGNED_BELOW_4G = 3 * GiB
export const HIGH_RAM_BASE = 4 * GiB

/** How many bytes of RAM `pc` maps below 4 GiB. */
export function pcBelow4g(ramBytes: number): number {
  const lowmem = ramBytes >= PC_MAX_RAM_BELOW_4G ? PC_GIGABYTE_ALIGNED_BELOW_4G : PC_MAX_RAM_BELOW_4G
  return Math.min(ramBytes, lowmem)
}

/** A run of one backend file seen at one guest-physical address. */
export interface RamPiece {
  /** Index of the backend (NUMA node) whose file holds it. */
  readonly backend: number
  readonly fileOffset: number
  readonly gpa: number
  readonly size: number
}

/** Where each backend's bytes appear in guest-physical space, given the backends' sizes in node order. */
export function pcRamPieces(backendBytes: readonly number[]): RamPiece[] {
  const below = pcBelow4g(backendBytes.reduce((a, b) => a + b, 0))
  const pieces: RamPiece[] = []
  let ramOffset = 0
  backendBytes.forEach((size, backend) => {
    const lowPart = Math.max(0, Math.min(size, below - ramOffset))
    if (lowPart > 0) pieces.push({ backend, fileOffset: 0, gpa: ramOffset, size: lowPart })
    if (size > lowPart) {
      pieces.push({ backend, fileOffset: lowPart, gpa: HIGH_RAM_BASE + ramOffset + lowPart - below, size: size - lowPart })
    }
    ramOffset += size
  })
  return pieces
}
