/**
 * Disk image locks, compatible with QEMU's (block/file-posix.c, measured with QEMU 7.2 in
 * /proc/locks): open file description (OFD) read locks on single bytes, 100 + i for each
 * permission i the holder uses and 200 + i for each permission it does not share with others.
 * A guest's disk uses "consistent read" (bit 0) and, unless read-only, "write" (bit 1), and never
 * shares write: so two read-only holders coexist, and anything with a writer conflicts. Our VMM
 * and QEMU see each other's locks; the host checks them before launching either backend.
 */
import { F_OFD_GETLK, F_OFD_SETLK, F_RDLCK, F_UNLCK, F_WRLCK, O_CLOEXEC, O_RDONLY } from '../../native-shims/constants.js'
import * as libc from '../../native-shims/libc.js'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'

const PERM_BASE = 100
const SHARED_BASE = 200
const CONSISTENT_READ = 0
const WRITE = 1

const perms = (readOnly: boolean) => (readOnly ? [CONSISTENT_READ] : [CONSISTENT_READ, WRITE])
const UNSHARED = [WRITE]

/** A file system without OFD locks: the disk works unlocked, as QEMU's does there. */
function locksUnsupported(e: unknown): boolean {
  const code = (e as { code?: string }).code
  return code === 'ENOLCK' || code === 'EINVAL' || code === 'EOPNOTSUPP'
}

/** Some other open file description holds a lock on byte `at` (ours never conflict with us). */
function lockedByOther(fd: number, at: number): boolean {
  return libc.fcntlLock(fd, F_OFD_GETLK, { type: F_WRLCK, start: at, len: 1 }).type !== F_UNLCK
}

/**
 * The one-line error when another holder's locks conflict with using the disk `readOnly` (or
 * read-write); undefined when there is none. `fd` is any open descriptor of the image.
 */
export function diskLockConflict(fd: number, path: string, readOnly: boolean): string | undefined {
  const conflict = perms(readOnly).some((p) => lockedByOther(fd, SHARED_BASE + p)) || UNSHARED.some((p) => lockedByOther(fd, PERM_BASE + p))
  if (!conflict) return undefined
  const writer = lockedByOther(fd, PERM_BASE + WRITE)
  return writer
    ? `disk ${path} is in use by another guest (locked read-write); stop that guest first or give this one a copy of the image`
    : `disk ${path} is in use by another guest (locked read-only); stop that guest first or attach the disk read-only here too (${path},ro)`
}

/** Checks, without taking them, that the locks for using the disk this way are free (before a launch). */
export function checkDiskLock(path: string, readOnly: boolean): void {
  const fd = libc.open(path, O_RDONLY | O_CLOEXEC)
  try {
    let why: string | undefined
    try {
      why = diskLockConflict(fd, path, readOnly)
    } catch (e) {
      if (!locksUnsupported(e)) throw e
    }
    if (why) throw new KtstrError(why)
  } finally {
    libc.close(fd)
  }
}

/**
 * Takes the locks on `fd` (opened read-write unless `readOnly`) for as long as that file
 * description stays open; throws the conflict as a KtstrError. As QEMU does, the locks are taken
 * first and checked after, so two guests starting at once cannot both miss each other.
 */
export function lockDisk(fd: number, path: string, readOnly: boolean): void {
  const set = (at: number) => libc.fcntlLock(fd, F_OFD_SETLK, { type: F_RDLCK, start: at, len: 1 })
  try {
    for (const p of perms(readOnly)) set(PERM_BASE + p)
    for (const p of UNSHARED) set(SHARED_BASE + p)
  } catch (e) {
    const code = (e as { code?: string }).code
    // A whole-file write lock by some other program (QEMU never takes one).
    if (code === 'EAGAIN' || code === 'EACCES')
      throw new KtstrError(`disk ${path} is locked by another program; stop it first or give this guest a copy of the image`, { cause: e })
    if (locksUnsupported(e)) return log.debug(`disk ${path}: no lock (${code})`)
    throw e
  }
  const why = diskLockConflict(fd, path, readOnly)
  if (why) {
    libc.fcntlLock(fd, F_OFD_SETLK, { type: F_UNLCK, start: 0, len: 0 })
    throw new KtstrError(why)
  }
}
