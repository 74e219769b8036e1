/**
 * Copy a file keeping its holes: a guest's RAM file holds its touched pages only, and a plain copy
 * (copy_file_range on tmpfs) would write every hole out as zeros — a GiB for an idle 1 GiB guest.
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { promisify } from 'node:util'
import { SEEK_DATA, SEEK_HOLE } from '../../native-shims/constants.js'
import { lseek } from '../../native-shims/libc.js'

const run = promisify(execFile)
/** Bytes per read/write of copyDataInto. */
const CHUNK = 8 << 20

/** A new `dst`: GNU cp finds the data with SEEK_DATA/SEEK_HOLE and, with --sparse=always, leaves zero blocks as holes. */
export async function copySparse(src: string, dst: string): Promise<void> {
  try {
    await run('cp', ['--sparse=always', '--', src, dst])
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    throw new Error(`cannot copy ${src} to ${dst}: ${err.stderr?.trim() || err.message}`)
  }
}

/**
 * Write `src`'s data (its extents, found with SEEK_DATA/SEEK_HOLE) into the existing `dst` at the
 * same offsets, never truncating it: `dst` may already be mapped by another process (a VMM that
 * starts meanwhile), which a truncation would hand SIGBUS. Both must be the same size; `dst`'s
 * holes where `src` has holes are left alone. Reads and writes run on libuv's thread pool.
 */
export async function copyDataInto(src: string, dst: string): Promise<void> {
  const from = await fs.promises.open(src, 'r')
  try {
    const to = await fs.promises.open(dst, 'r+')
    try {
      const [a, b] = [(await from.stat()).size, (await to.stat()).size]
      if (a !== b) throw new Error(`${src} is ${a} bytes, not ${b}`)
      const buf = Buffer.allocUnsafe(CHUNK)
      for (let pos = nextData(from.fd, 0, a); pos < a; pos = nextData(from.fd, pos, a)) {
        const end = lseek(from.fd, pos, SEEK_HOLE)
        for (; pos < end; ) {
          const { bytesRead } = await from.read(buf, 0, Math.min(CHUNK, end - pos), pos)
          if (bytesRead === 0) throw new Error(`${src} ended at ${pos} bytes while it was read`)
          for (let done = 0; done < bytesRead; ) done += (await to.write(buf, done, bytesRead - done, pos + done)).bytesWritten
          pos += bytesRead
        }
      }
    } finally {
      await to.close()
    }
  } catch (e) {
    throw new Error(`cannot copy ${src} into ${dst}: ${(e as Error).message}`)
  } finally {
    await from.close()
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
