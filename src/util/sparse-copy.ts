/**
 * Copy a file keeping its holes: a guest's RAM file holds its touched pages only, and a plain copy
 * (copy_file_range on tmpfs) would write every hole out as zeros — a GiB for an idle 1 GiB guest.
 * GNU cp finds the data with SEEK_DATA/SEEK_HOLE and, with --sparse=always, leaves zero blocks as holes.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export async function copySparse(src: string, dst: string): Promise<void> {
  try {
    await run('cp', ['--sparse=always', '--', src, dst])
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    throw new Error(`cannot copy ${src} to ${dst}: ${err.stderr?.trim() || err.message}`)
  }
}
