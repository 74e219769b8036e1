/**
 * Copy a file keeping its holes: a guest's RAM file holds its touched pages only, and a plain copy
 * (copy_file_range on tmpfs) would write every hole out as zeros — a GiB for an idle 1 GiB guest.
 */
import fs from 'node:fs'
import { SEEK_DATA, SEEK_HOLE, SEEK_SET } from '../../native-shims/constants.js'
import { lseek, sendfile } from '../../native-shims/libc.js'

/** copyDataInto's bytes per sendfile, and between two turns of the event loop. */
const CHUNK = 16 << 20

/**
 * A new `dst` of `src`'s size with its data where `src` has data and holes elsewhere (copyDataInto).
 * In process, not GNU cp: a ktstr guest (a nested run) has busybox's cp, which cannot keep holes.
 */
export async function copySparse(src: string, dst: string): Promise<void> {
  try {
    fs.writeFileSync(dst, '', { flag: 'wx' })
    fs.truncateSync(dst, fs.statSync(src).size)
  } catch (e) {
    throw new Error(`cannot copy ${src} to ${dst}: ${(e as Error).message}`)
  }
  await copyDataInto(src, dst)
}

/**
 * Write `src`'s data (its extents, found with SEEK_DATA/SEEK_HOLE) into the existing `dst` at the
 * same offsets, never truncating it: `dst` may already be mapped by another process (a VMM that
 * starts meanwhile), which a truncation would hand SIGBUS. Both must be the same size; `dst`'s
 * holes where `src` has holes are left alone. The kernel copies (sendfile: one copy, from the page
 * cache to `dst`, ~20 % faster here than reads and writes through a buffer; copy_file_range
 * refuses a copy from disk to tmpfs), a chunk at a time with a turn for the event loop after each.
 */
export async function copyDataInto(src: string, dst: string): Promise<void> {
  let from: number | undefined
  let to: number | undefined
  try {
    from = fs.openSync(src, 'r')
    to = fs.openSync(dst, 'r+')
    const [a, b] = [fs.fstatSync(from).size, fs.fstatSync(to).size]
    if (a !== b) throw new Error(`${src} is ${a} bytes, not ${b}`)
    let sinceYield = 0
    for (let pos = nextData(from, 0, a); pos < a; pos = nextData(from, pos, a)) {
      const end = lseek(from, pos, SEEK_HOLE)
      lseek(to, pos, SEEK_SET) // sendfile writes at the output's file position
      while (pos < end) {
        const n = sendfile(to, from, pos, Math.min(CHUNK - sinceYield, end - pos))
        if (n === 0) throw new Error(`${src} ended at ${pos} bytes while it was read`)
        pos += n
        sinceYield += n
        if (sinceYield >= CHUNK) {
          sinceYield = 0
          await new Promise((r) => setImmediate(r))
        }
      }
    }
  } catch (e) {
    throw new Error(`cannot copy ${src} into ${dst}: ${(e as Error).message}`)
  } finally {
    if (from !== undefined) fs.closeSync(from)
    if (to !== undefined) fs.closeSync(to)
  }
}

/** The offset of the next data at or after `pos`, or `size` when only a hole is left (ENXIO). */
function nextData(fd: number, pos: number, size: number): number {
  try {
    return lseek(fd, pos, SEEK_DATA)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENXIO') return size
    throw e
  }
}
