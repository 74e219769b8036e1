/**
 * A file shared with another process (QEMU's guest RAM backing) or kept (a kvm template's RAM) mapped into this one: MAP_SHARED,
 * so each side sees the other's writes at once. The descriptor is closed after mmap; the mapping
 * keeps the file alive (even once it is unlinked) until munmap.
 */
import fs from 'node:fs'
import os from 'node:os'
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../native-shims/constants.js'
import { mmap } from '../../../native-shims/libc.js'
import { log } from '../../util/log.js'
import { SHM_DIR } from '../run-dir.js'

const MiB = 2 ** 20

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

/** tmpfs when it has room for all of guest RAM, else TMPDIR (a full tmpfs would kill the VMM with SIGBUS on a guest write). */
export function ramFolderParent(ramBytes: number, shm = SHM_DIR): string {
  try {
    const st = fs.statfsSync(shm)
    if (st.bavail * st.bsize >= ramBytes) return shm
    log.debug(`${shm} has ${Math.floor((st.bavail * st.bsize) / MiB)} MiB free, less than the guest's RAM: its backing files go to ${os.tmpdir()}`)
  } catch {
    // no /dev/shm
  }
  return os.tmpdir()
}
