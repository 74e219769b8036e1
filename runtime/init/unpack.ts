/**
 * Unpack a newc cpio archive (the per-run archive a restored guest gets over the channel) into
 * the root file system, as the kernel unpacks an initramfs (Documentation/driver-api/
 * early-userspace/buffer-format.rst): 110-byte ASCII header, name and data each padded to 4
 * bytes, a later entry replacing an earlier file, TRAILER!!! at the end. Directories, regular
 * files and symlinks; the host writes nothing else into a per-run archive.
 */
import fs from 'node:fs'
import path from 'node:path'

const HEADER = 110
const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

const pad4 = (n: number) => (n + 3) & ~3

interface CpioEntry {
  name: string
  mode: number
  data: Buffer
}

/** The archive's entries in order, up to TRAILER!!!. Throws on a malformed archive. */
function* cpioEntries(archive: Buffer): Generator<CpioEntry> {
  let off = 0
  for (;;) {
    if (off + HEADER > archive.length) throw new Error(`run archive: truncated header at byte ${off}`)
    const magic = archive.toString('latin1', off, off + 6)
    if (magic !== '070701') throw new Error(`run archive: bad magic ${JSON.stringify(magic)} at byte ${off}`)
    const field = (i: number) => Number.parseInt(archive.toString('latin1', off + 6 + i * 8, off + 14 + i * 8), 16)
    const mode = field(1)
    const size = field(6)
    const nameSize = field(11)
    const nameAt = off + HEADER
    const dataAt = pad4(nameAt + nameSize)
    if (dataAt + size > archive.length || nameSize < 1) throw new Error(`run archive: truncated entry at byte ${off}`)
    const name = archive.toString('utf8', nameAt, nameAt + nameSize - 1)
    if (name === 'TRAILER!!!') return
    yield { name, mode, data: archive.subarray(dataAt, dataAt + size) }
    off = pad4(dataAt + size)
  }
}

/** The content of the regular file at `guestPath` in the archive (its last regular-file entry of that path), or undefined. */
export function cpioFile(archive: Buffer, guestPath: string): Buffer | undefined {
  let found: Buffer | undefined
  for (const e of cpioEntries(archive)) {
    if ((e.mode & S_IFMT) === S_IFREG && path.posix.normalize(`/${e.name}`) === guestPath) found = e.data
  }
  return found
}

/** Writes the archive's entries under `root`; returns how many. Throws on a malformed archive. */
export function unpackCpio(archive: Buffer, root = '/'): number {
  let count = 0
  for (const { name, mode, data } of cpioEntries(archive)) {
    const target = path.join(root, path.posix.normalize(`/${name}`))
    switch (mode & S_IFMT) {
      case S_IFDIR:
        fs.mkdirSync(target, { recursive: true, mode: mode & 0o7777 })
        break
      case S_IFREG:
        fs.mkdirSync(path.dirname(target), { recursive: true })
        fs.rmSync(target, { force: true })
        fs.writeFileSync(target, data, { mode: mode & 0o7777 })
        break
      case S_IFLNK:
        fs.mkdirSync(path.dirname(target), { recursive: true })
        fs.rmSync(target, { force: true })
        fs.symlinkSync(data.toString('utf8'), target)
        break
      default:
        throw new Error(`run archive: ${name} has file type 0${(mode & S_IFMT).toString(8)}, not a directory, file or symlink`)
    }
    count++
  }
  return count
}
