/**
 * How big an initramfs a guest can unpack. Linux unpacks it into a tmpfs (rootfs) whose size is
 * fixed at mount time to half of the RAM then free, while the archive itself still occupies RAM
 * (it is freed after unpacking). So the unpacked image must fit (MemTotal − archive) / 2. Past
 * that, the kernel logs "Initramfs unpacking failed: write error" and goes on: files at the end of
 * the archive (the included ones) are silently cut short, or, when node itself does not fit, it
 * panics for want of an init.
 *
 * Measured with QEMU (pc machine) and this project's Linux 6.12, rootfs size= in /proc/mounts with
 * the 96.1 MB base archive: 101056k in a 320 MiB guest, 198144k in 512 MiB (165372k with a 64 MiB
 * file included, 161276k with 72 MiB: that file arrived cut to 65.7 MiB), 455804k in 1024 MiB,
 * 1968632k in 4096 MiB. So MemTotal at mount (2 × size + archive) is the RAM less ~24 MiB, less
 * the page structs (1/64 of the RAM and some), less a 64 MiB DMA bounce buffer once RAM reaches
 * above 4 GiB; guestMemTotal stays 4–11 MiB under those, and a 256 MiB guest cannot take the base
 * image at all.
 */
import { KtstrError } from '../util/errors.js'
import type { TreeCost } from './tree.js'

const MiB = 1 << 20

/** MemTotal of a guest while it unpacks its initramfs, a little low (see above). */
export function guestMemTotal(memoryMib: number): number {
  const bounceBuffer = memoryMib > 3072 ? 64 : 0
  return (memoryMib - 32 - memoryMib / 48 - bounceBuffer) * MiB
}

/** The largest unpacked size a guest of `memoryMib` takes with an archive of `archiveBytes`. */
export function initramfsCapacity(memoryMib: number, archiveBytes: number): number {
  return Math.max(0, (guestMemTotal(memoryMib) - archiveBytes) / 2)
}

/**
 * A check for GuestTree's `limit`: throws a one-line KtstrError once the base image plus the run
 * archive so far would not unpack in a guest of `memoryMib`.
 */
export function initramfsLimit(memoryMib: number, base: TreeCost): (run: TreeCost) => void {
  return (run) => {
    const archive = base.archive + run.archive
    const unpacked = base.unpacked + run.unpacked
    const cap = initramfsCapacity(memoryMib, archive)
    if (unpacked <= cap) return
    const what =
      run.unpacked < MiB
        ? `the base image (${mib(base.unpacked)} MiB: node, the ktstr runtime and the test's dependencies)`
        : `the base image (${mib(base.unpacked)} MiB) plus the included files (at least ${mib(run.unpacked)} MiB)`
    throw new KtstrError(
      `the guest image does not fit a ${memoryMib} MiB guest: ${what} exceed the ${mib(cap)} MiB it can unpack (Linux gives the initramfs half of the RAM beside the archive); give the guest more memory (--memory, or memory= in a test file) or put big files on a disk image (--disk)`,
    )
  }
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(0)
}
