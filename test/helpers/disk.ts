/** Disk images and the data written to them, for the `--disk` suites of both backends. */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const MiB = 1048576

/** What `yes ktstr-pattern | head -c BYTES` writes in the guest. */
export const pattern = (bytes: number) => Buffer.from('ktstr-pattern\n'.repeat(Math.ceil(bytes / 14))).subarray(0, bytes)

export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A zero-filled (sparse) disk image of `size` bytes in a fresh temp directory. */
export function scratch(size: number): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-disk-')), 'disk.img')
  fs.writeFileSync(file, Buffer.alloc(0))
  fs.truncateSync(file, size)
  return file
}
