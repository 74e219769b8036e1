/**
 * The base image as a read-only ext4 file system (`mke2fs -d`), attached to the guest as a virtio-blk
 * disk instead of being unpacked into guest RAM on every boot (see disk-boot.ts for how the guest
 * mounts it). Built once per base image key into the image cache, like the archive.
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { isExecutable } from '../util/which.js'
import type { GuestTree } from './tree.js'

const BLOCK = 4096
/** Where e2fsprogs lives; a user's PATH often lacks the sbin folders. */
const MKE2FS_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin']

/** The mke2fs program, or undefined (then the guest unpacks the archive as before). */
export function findMke2fs(): string | undefined {
  return [...(process.env.PATH ?? '').split(':').filter(Boolean), ...MKE2FS_DIRS].map((d) => path.join(d, 'mke2fs')).find(isExecutable)
}

/**
 * Writes `tree` as an ext4 image to `out`: staged in a folder next to it (regular files are cloned
 * or copied, device nodes left out: the guest's /dev is devtmpfs), then `mke2fs -d`. No journal
 * (the guest mounts it read-only), and a sparse file sized from the content.
 */
export async function writeExt4(tree: GuestTree, mke2fs: string, out: string): Promise<void> {
  const stage = `${out}.d`
  fs.rmSync(stage, { recursive: true, force: true })
  fs.mkdirSync(stage, { mode: 0o755 })
  let blocks = 0
  const dirs: [string, number][] = []
  try {
    for (const p of tree.paths()) {
      const e = tree.get(p)!
      const dest = path.join(stage, p)
      fs.mkdirSync(path.dirname(dest), { recursive: true }) // folders implied by their entries
      blocks += 1
      switch (e.kind) {
        case 'dir':
          fs.mkdirSync(dest, { recursive: true })
          dirs.push([dest, e.mode])
          break
        case 'file':
          fs.copyFileSync(e.source, dest, fs.constants.COPYFILE_FICLONE)
          fs.chmodSync(dest, e.mode)
          blocks += Math.ceil(e.size / BLOCK)
          break
        case 'data':
          fs.writeFileSync(dest, e.data, { mode: e.mode })
          fs.chmodSync(dest, e.mode)
          blocks += Math.ceil(e.data.length / BLOCK)
          break
        case 'symlink':
          fs.symlinkSync(e.target, dest)
          break
        case 'chardev':
          break
      }
    }
    for (const [d, mode] of dirs) fs.chmodSync(d, mode)
    // Room for metadata (inode tables, bitmaps, extent blocks) beside the data: 10% and 16 MiB.
    const total = Math.ceil(blocks * 1.1) + 4096
    fs.writeFileSync(out, '')
    fs.truncateSync(out, total * BLOCK)
    const args = ['-q', '-F', '-t', 'ext4', '-b', String(BLOCK), '-m', '0', '-N', String(tree.size + 256)]
    args.push('-O', '^has_journal,^resize_inode', '-E', 'root_owner=0:0', '-L', 'ktstr-base', '-d', stage, out)
    await promisify(execFile)(mke2fs, args)
  } finally {
    fs.rmSync(stage, { recursive: true, force: true })
  }
}
