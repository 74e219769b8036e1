/**
 * Booting from the base image on a disk (ext4.ts): the initramfs holds only this run's files, the
 * device nodes, a static busybox and a boot script at /ktstr/node (the kernel's rdinit). The script
 * mounts the disk at /ktstr/base and bind-mounts from it every base entry the initramfs does not
 * have, at its own path (so paths, and node's realpaths, are the host's as before), then execs node.
 *
 * A folder holding something of this run (or one of WRITABLE) is made in the initramfs and its base
 * entries are bound one by one; any other base folder is bound whole. The bound folders are
 * read-only: what a test writes goes under /tmp, /run, /root or /mnt, the run's working folder
 * (`writable`: its base subfolders are bound read-only), or a folder of its own files.
 */
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import type { BaseImage } from './base.js'
import { readElf } from './elf.js'
import { GUEST_NODE } from './guest-paths.js'
import type { InitrdTimings } from './initrd.js'
import { GuestTree, type TreeEntry } from './tree.js'

export const BASE_MOUNT = '/ktstr/base'
const BOOT_DIR = '/ktstr/boot'
/** Folders that stay writable (in the initramfs) even when the base image has files in them. */
const WRITABLE = ['/tmp', '/run', '/root', '/mnt', '/etc', '/dev', '/proc', '/sys']
const RUN_FIRST_INODE = 0x40000000
/** Paths the boot part of the initramfs has itself (the script replaces the base's /ktstr/node link). */
const OWN = [GUEST_NODE, BASE_MOUNT]

/** Why the base image cannot boot from a disk with this busybox (it must run before the disk is mounted), or undefined. */
export function diskBootBlocker(busybox: string): string | undefined {
  return readElf(busybox).interpreter ? `${busybox} is dynamically linked; install busybox-static` : undefined
}

/** The guest's name of virtio-blk disk `index` (0 → vda, 26 → vdaa), as Linux's virtblk_name_format. */
export function virtioDiskName(index: number): string {
  let s = ''
  for (let i = index + 1; i > 0; i = Math.floor((i - 1) / 26)) s = String.fromCharCode(97 + ((i - 1) % 26)) + s
  return `vd${s}`
}

export interface MountPlan {
  /** Entries the initramfs gets so the binds have mount points: folders, empty files, and symlinks and device nodes copied as they are. */
  boot: GuestTree
  /** Base paths bind-mounted from BASE_MOUNT, parents first. */
  binds: string[]
}

/**
 * Which base entries to bind, given the base tree and the run archive (its regular files that the
 * base has are left out of it, `baseFiles`).
 */
export function mountPlan(base: GuestTree, run: GuestTree, baseFiles: ReadonlySet<string>, writable: readonly string[] = []): MountPlan {
  // Every base entry, with the folders only implied by their entries' paths.
  const entries = new Map<string, TreeEntry>()
  const children = new Map<string, string[]>()
  const note = (p: string, e: TreeEntry) => {
    if (p === '/' || entries.has(p)) return
    entries.set(p, e)
    const parent = path.posix.dirname(p)
    if (!children.has(parent)) children.set(parent, [])
    children.get(parent)!.push(p)
    note(parent, { kind: 'dir', mode: 0o755 })
  }
  for (const p of base.paths()) note(p, base.get(p)!)
  const written = new Map<string, TreeEntry>()
  for (const p of run.paths()) {
    const e = run.get(p)!
    if (!(e.kind === 'file' && baseFiles.has(p))) written.set(p, e)
  }
  // Folders made in the initramfs: the parents of what this run writes (a base folder it lists
  // without writing into is not one), of device nodes, the writable ones, and their parents.
  const made = new Set<string>(['/', BOOT_DIR, path.posix.dirname(BOOT_DIR)])
  const makeUpTo = (p: string) => {
    for (let d = p; !made.has(d); d = path.posix.dirname(d)) made.add(d)
  }
  for (const [p, e] of written) if (!(e.kind === 'dir' && entries.get(p)?.kind === 'dir')) makeUpTo(path.posix.dirname(p))
  for (const [p, e] of entries) if (e.kind === 'chardev') makeUpTo(path.posix.dirname(p))
  for (const d of [...WRITABLE, ...writable]) makeUpTo(path.posix.resolve('/', d))

  const boot = new GuestTree()
  const binds: string[] = []
  for (const d of [...made].sort()) {
    const e = entries.get(d)
    boot.addGuestDir(d, e?.kind === 'dir' ? e.mode : 0o755)
  }
  for (const d of [...made].sort()) {
    for (const c of children.get(d) ?? []) {
      if (made.has(c) || OWN.includes(c) || (written.has(c) && written.get(c)!.kind !== 'dir')) continue
      const e = entries.get(c)!
      if (e.kind === 'symlink') boot.addSymlink(c, e.target)
      else if (e.kind === 'chardev') boot.addDev(c, e.major, e.minor, e.mode)
      else if (e.kind === 'data')
        boot.addData(c, e.data, e.mode) // small made-up files (/etc/passwd): kept writable
      else {
        if (e.kind === 'dir') boot.addGuestDir(c, e.mode)
        else boot.addData(c, '', e.mode)
        binds.push(c)
      }
    }
  }
  return { boot, binds }
}

/** fstab field escaping (getmntent decodes octal escapes). */
function fstabField(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`)
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/**
 * Writes the initramfs of a disk boot to `outPath`: the mount plan, busybox, the fstab and the boot
 * script, then the run archive. `device` is the base disk's guest name (e.g. vdb).
 */
export async function composeDiskInitrd(
  base: Pick<BaseImage, 'tree' | 'files'>,
  run: GuestTree,
  opts: { device: string; busybox: string; node: string; writable?: readonly string[] },
  outPath: string,
): Promise<InitrdTimings> {
  const t0 = performance.now()
  if (/[\s'"\\]/.test(opts.device)) throw new KtstrError(`bad base disk name ${opts.device}`)
  const { boot, binds } = mountPlan(base.tree, run, base.files, opts.writable)
  // sysfs only to raise the disk's readahead (node's first start reads ~50 MB from it), then unmounted.
  const fstab = [
    'devtmpfs /dev devtmpfs defaults 0 0',
    'sysfs /sys sysfs defaults 0 0',
    `/dev/${opts.device} ${BASE_MOUNT} ext4 ro 0 0`,
    ...binds.map((p) => `${fstabField(path.posix.join(BASE_MOUNT, p))} ${fstabField(p)} none bind 0 0`),
  ]
  const bb = `${BOOT_DIR}/busybox`
  const script = [
    `#!${bb} sh`,
    `${bb} mount -a -T ${BOOT_DIR}/fstab && (echo 4096 > /sys/block/${opts.device}/queue/read_ahead_kb) && ${bb} umount /sys /dev || { echo "ktstr boot: cannot mount the base image from /dev/${opts.device}" >&2; exit 1; }`,
    // argv[0] stays the kernel's rdinit, as when node was started through the /ktstr/node link.
    `exec -a ${GUEST_NODE} ${shQuote(opts.node)} "$@"`,
    '',
  ].join('\n')
  boot.addGuestDir(BASE_MOUNT, 0o755)
  boot.addFileAs(bb, opts.busybox, 0o755)
  boot.addData(`${BOOT_DIR}/fstab`, `${fstab.join('\n')}\n`)
  boot.addData(GUEST_NODE, script, 0o755)
  const bootBytes = await boot.writeCpio(outPath)
  const t1 = performance.now()
  const runBytes = await run.writeCpio(outPath, { append: true, firstInode: RUN_FIRST_INODE })
  return { copyMs: t1 - t0, appendMs: performance.now() - t1, bytes: bootBytes + runBytes }
}
