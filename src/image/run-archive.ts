import fs from 'node:fs'
import { libraryClosure } from './closure.js'
import { readElf, isElf } from './elf.js'
import { GuestTree } from './tree.js'

export interface RunArchiveOptions {
  /** Files made up for this run, e.g. { guestPath: '/ktstr/run/spec.json', content: JSON.stringify(spec) }. */
  data: { guestPath: string; content: Buffer | string; mode?: number }[]
  /**
   * Host files or directories (recursively) to include at their host paths. A dynamically linked ELF
   * file among them (e.g. the scheduler binary) brings its library closure along.
   */
  hostPaths: string[]
  /** Guest paths of regular files the base image already has (BaseImage.files); they are not repeated. */
  omit?: ReadonlySet<string>
}

/** Inodes of the per-run archive start here, apart from the base archive's (which count up from 1). */
const RUN_FIRST_INODE = 0x40000000

/** The small per-run newc archive that is appended to the base image. */
export async function runArchive(opts: RunArchiveOptions): Promise<Buffer> {
  const tree = new GuestTree()
  for (const p of opts.hostPaths) {
    if (fs.statSync(p).isDirectory()) {
      tree.addDir(p)
      continue
    }
    tree.add(p)
    if (isElf(p) && readElf(p).interpreter) {
      for (const lib of libraryClosure([p]).slice(1)) tree.add(lib)
    }
  }
  for (const d of opts.data) tree.addData(d.guestPath, d.content, d.mode ?? 0o644)
  return tree.toBuffer({ firstInode: RUN_FIRST_INODE, ...(opts.omit ? { omit: opts.omit } : {}) })
}
