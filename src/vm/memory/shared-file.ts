/**
 * A file shared with another process (QEMU's guest RAM backing) mapped into this one: MAP_SHARED,
 * so each side sees the other's writes at once. The descriptor is closed after mmap; the mapping
 * keeps the file alive (even once it is unlinked) until munmap.
 */
import fs from 'node:fs'
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../native-shims/constants.js'
import { mmap } from '../../../native-shims/libc.js'

/**
 * Creates `file` (it must not exist) as a sparse file of `size` bytes and maps all of it. The
 * size is set before mapping, so no access can fall beyond the end of the file (SIGBUS).
 */
export function createSharedFile(file: string, size: number): bigint {
  const { O_RDWR, O_CREAT, O_EXCL } = fs.constants
  const fd = fs.openSync(file, O_RDWR | O_CREAT | O_EXCL, 0o600) // a shared writable mapping needs O_RDWR
  try {
    fs.ftruncateSync(fd, size)
    return mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
  } finally {
    fs.closeSync(fd)
  }
}
