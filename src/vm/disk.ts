/**
 * A virtio-blk disk for the guest (`/dev/vda`, `/dev/vdb`, …): `FILE[,ro][,iops=N][,bps=N]`, from
 * `ktstr exec --disk` and the docblock's `disk=`. Both backends take the same spec.
 */
import fs from 'node:fs'
import path from 'node:path'
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

export function parseDiskSpec(text: string, baseDir = process.cwd()): DiskSpec {
  const [file, ...opts] = text.split(',')
  if (!file) throw new KtstrError(`bad disk ${JSON.stringify(text)}: expected FILE[,ro][,iops=N][,bps=N]`)
  const disk: DiskSpec = { path: path.resolve(baseDir, file), readOnly: false }
  for (const o of opts) {
    const [k, v] = o.split('=')
    if (k === 'ro' && v === undefined) disk.readOnly = true
    else if ((k === 'iops' || k === 'bps') && v !== undefined && /^\d+$/.test(v) && Number(v) > 0 && Number(v) <= MAX_DISK_THROTTLE) disk[k] = Number(v)
    else throw new KtstrError(`bad disk option ${JSON.stringify(o)} in ${JSON.stringify(text)}: use ro, iops=N or bps=N (N > 0), N at most ${MAX_DISK_THROTTLE} (QEMU's limit)`)
  }
  return disk
}

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

/** QEMU's virtio-blk for the disk, with QEMU's own throttling (block/throttle-groups). */
export function qemuDiskArgs(d: DiskSpec, index: number): string[] {
  const drive = [
    `file=${d.path.replace(/,/g, ',,')}`,
    'if=none',
    `id=disk${index}`,
    'format=raw',
    'cache=none',
    'aio=threads',
    ...(d.readOnly ? ['readonly=on'] : []),
    ...(d.iops ? [`throttling.iops-total=${d.iops}`] : []),
    ...(d.bps ? [`throttling.bps-total=${d.bps}`] : []),
  ].join(',')
  return ['-drive', drive, '-device', `virtio-blk-pci,drive=disk${index}`]
}
