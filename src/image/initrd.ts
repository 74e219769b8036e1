import fs from 'node:fs'

export interface InitrdTimings {
  /** Time to copy the base archive (copy_file_range or a reflink, no user-space copy). */
  copyMs: number
  appendMs: number
  bytes: number
}

/**
 * Writes base + run archive to `outPath`. The kernel unpacks concatenated newc archives in order, a
 * later entry overwriting an earlier file (Documentation/driver-api/early-userspace/buffer-format.rst).
 */
export function composeInitrd(basePath: string, runCpio: Buffer, outPath: string): InitrdTimings {
  const t0 = performance.now()
  const baseSize = fs.statSync(basePath).size
  // The unpacker wants the next header 4-byte aligned after the previous archive's trailer.
  if (baseSize % 4 !== 0) throw new Error(`initrd: base archive ${basePath} is ${baseSize} bytes, not a multiple of 4`)
  fs.copyFileSync(basePath, outPath, fs.constants.COPYFILE_FICLONE)
  const t1 = performance.now()
  fs.appendFileSync(outPath, runCpio)
  const t2 = performance.now()
  return { copyMs: t1 - t0, appendMs: t2 - t1, bytes: baseSize + runCpio.length }
}
