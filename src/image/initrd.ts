import type { BaseImage } from './base.js'
import type { GuestTree } from './tree.js'

export interface InitrdTimings {
  /** Time to copy the base archive (copy_file_range or a reflink, no user-space copy). */
  copyMs: number
  appendMs: number
  bytes: number
}

/** Inodes of the per-run archive start here, apart from the base archive's (which count up from 1). */
const RUN_FIRST_INODE = 0x40000000

/**
 * Writes base + run archive to `outPath`, streaming the run archive's files from the host. The
 * kernel unpacks concatenated newc archives in order, a later entry overwriting an earlier file
 * (Documentation/driver-api/early-userspace/buffer-format.rst).
 */
export async function composeInitrd(base: Pick<BaseImage, 'path' | 'bytes' | 'copyTo'>, run: GuestTree, outPath: string): Promise<InitrdTimings> {
  const t0 = performance.now()
  // The unpacker wants the next header 4-byte aligned after the previous archive's trailer.
  if (base.bytes % 4 !== 0) throw new Error(`initrd: base archive ${base.path} is ${base.bytes} bytes, not a multiple of 4`)
  await base.copyTo(outPath)
  const t1 = performance.now()
  const runBytes = await run.writeCpio(outPath, { append: true, firstInode: RUN_FIRST_INODE })
  const t2 = performance.now()
  return { copyMs: t1 - t0, appendMs: t2 - t1, bytes: base.bytes + runBytes }
}
