/**
 * A virtio-blk disk for the guest (`/dev/vda`, `/dev/vdb`, …), from `ktstr exec --disk` and the
 * docblock's `disk=` (`FILE[,ro][,iops=N][,bps=N]`, parsed by spec/parse.ts). Both backends take it.
 */
import fs from 'node:fs'
import { KtstrError } from '../util/errors.js'
import { checkDiskLock } from './disk-lock.js'

export interface DiskSpec {
  path: string
  readOnly: boolean
  /** Requests per second; an exhausted budget delays requests, never fails them. */
  iops?: number
  /** Bytes per second. */
  bps?: number
}

/** QEMU's largest throttling value (THROTTLE_VALUE_MAX); the kvm backend takes the same range. */
export const MAX_DISK_THROTTLE = 1e15

/**
 * The disk file must exist, be a regular file (or block device) the host can open, and not be in
 * use by another guest of either backend or a QEMU (disk-lock.ts).
 */
export function checkDisk(d: DiskSpec): void {
  let st: fs.Stats
  try {
    st = fs.statSync(d.path)
  } catch {
    throw new KtstrError(`disk ${d.path} does not exist; create it first, e.g. truncate -s 64M ${d.path}`)
  }
  if (!st.isFile() && !st.isBlockDevice()) throw new KtstrError(`disk ${d.path} is not a regular file or block device`)
  try {
    fs.accessSync(d.path, d.readOnly ? fs.constants.R_OK : fs.constants.R_OK | fs.constants.W_OK)
  } catch {
    throw new KtstrError(`disk ${d.path} is not ${d.readOnly ? 'readable' : 'read-writable'} by this user${d.readOnly ? '' : '; add ,ro for a read-only disk'}`)
  }
  checkDiskLock(d.path, d.readOnly)
}
