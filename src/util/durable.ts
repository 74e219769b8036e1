/** Making writes survive a crash: data reaches the disk before a rename publishes it. */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/** fsync(2) of a file or folder by path (any descriptor of an inode flushes its data). */
export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** fsync of every file and folder under `dir`, `dir` last. */
export function fsyncTree(dir: string): void {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name)
    if (ent.isDirectory()) fsyncTree(p)
    else if (ent.isFile()) fsyncPath(p)
  }
  fsyncPath(dir)
}

/** Renames `from` to `to` and syncs the folder, so the new name survives a crash. */
export function renameDurably(from: string, to: string): void {
  fs.renameSync(from, to)
  fsyncPath(path.dirname(to))
}

/**
 * Writes `data` to `file` so that a reader, even after a crash, sees the old file or the whole new
 * one, never a part: written to a temporary name beside it, synced, renamed into place.
 */
export function writeFileAtomically(file: string, data: Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = tempBeside(file)
  try {
    fs.writeFileSync(tmp, data)
    fsyncPath(tmp)
    renameDurably(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
}

/** The same for a file that `make` writes at the temporary name it is given (removed if it throws). */
export async function makeFileAtomically<T>(file: string, make: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = tempBeside(file)
  try {
    const r = await make(tmp)
    fsyncPath(tmp)
    renameDurably(tmp, file)
    return r
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
}

const tempBeside = (file: string) => `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
