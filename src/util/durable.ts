/** Making writes survive a crash: data reaches the disk before a rename publishes it. */
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
