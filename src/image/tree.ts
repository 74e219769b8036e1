import type { Hash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { CpioWriter, FileSink } from './cpio.js'

/** One guest path of the image. */
export type TreeEntry =
  | { kind: 'dir'; mode: number }
  | { kind: 'file'; mode: number; source: string; size: number; mtimeMs: number }
  | { kind: 'data'; mode: number; data: Buffer }
  | { kind: 'symlink'; target: string }
  | { kind: 'chardev'; mode: number; major: number; minor: number }

export type PathFilter = (hostPath: string, stat: fs.Stats) => boolean

export interface WriteOptions {
  /** See CpioWriterOptions.firstInode. */
  firstInode?: number
  /** Append to `outPath` (after an earlier archive) instead of replacing it. */
  append?: boolean
}

/** What a tree costs: bytes of newc archive, and guest RAM once unpacked (see entryCost). */
export interface TreeCost {
  archive: number
  unpacked: number
}

export interface GuestTreeOptions {
  /** Guest paths of regular files to leave out (already present from an earlier archive). */
  omit?: ReadonlySet<string>
  /** Called with the running cost after each added entry; throws to stop (e.g. over a size limit). */
  limit?: (cost: TreeCost) => void
}

const PAGE = 4096
/** newc stores sizes in 32 bits. */
const MAX_FILE = 0xffffffff

/**
 * The set of files for a guest image, at the guest paths they will have. Host files keep their host
 * path, and symlinked host path components stay symlinks (Debian's merged /usr: /lib → usr/lib), so
 * both spellings of a path resolve in the guest as on the host.
 */
export class GuestTree {
  private readonly map = new Map<string, TreeEntry>()
  private readonly done = new Map<string, string>()
  private readonly total: TreeCost = { archive: 0, unpacked: 0 }

  constructor(private readonly opts: GuestTreeOptions = {}) {}

  /** The archive's size and unpacked RAM so far (trailer and implied parent folders aside). */
  cost(): TreeCost {
    return { ...this.total }
  }

  get size(): number {
    return this.map.size
  }

  /** Guest paths, parents before children. */
  paths(): string[] {
    return [...this.map.keys()].sort(byComponents)
  }

  get(guestPath: string): TreeEntry | undefined {
    return this.map.get(path.posix.normalize(guestPath))
  }

  /** Whether `guestPath` exists in the guest, following symlinks in the tree (a final symlink counts as present). */
  has(guestPath: string): boolean {
    return this.map.has(this.resolveParent(guestPath))
  }

  /**
   * Adds the host file, directory (the entry only) or symlink at `hostPath`, with every parent directory.
   * Symlinks on the way, and a final one, are added as symlinks plus their targets. `source` gives the
   * final regular file's content from another host file (e.g. a stripped copy). Returns the real path.
   */
  add(hostPath: string, opts: { source?: string } = {}): string {
    const abs = path.resolve(hostPath)
    const known = this.done.get(abs)
    if (known !== undefined && !opts.source) return known
    const parts = abs.split('/').filter((c) => c !== '')
    let real = '/'
    for (let i = 0; i < parts.length; i++) {
      const cand = path.join(real, parts[i]!)
      const last = i === parts.length - 1
      let st: fs.Stats
      try {
        st = fs.lstatSync(cand)
      } catch (e) {
        throw new KtstrError(`cannot put ${abs} into the guest image: ${cand} does not exist (${(e as NodeJS.ErrnoException).code})`, { cause: e })
      }
      if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(cand)
        let resolved: string
        try {
          resolved = fs.realpathSync(cand) // ELOOP and dangling links end here, before the recursion below
        } catch (e) {
          throw new KtstrError(`cannot put ${abs} into the guest image: symlink ${cand} → ${target} does not resolve (${(e as NodeJS.ErrnoException).code})`, {
            cause: e,
          })
        }
        this.put(cand, { kind: 'symlink', target })
        this.add(path.resolve(path.dirname(cand), target), last ? opts : {})
        real = resolved
      } else if (st.isDirectory()) {
        if (!this.map.has(cand)) this.put(cand, { kind: 'dir', mode: st.mode & 0o7777 })
        real = cand
      } else if (!last) {
        throw new KtstrError(`cannot put ${abs} into the guest image: ${cand} is not a directory`)
      } else if (st.isFile()) {
        this.putFile(cand, st, opts.source)
        real = cand
      } else {
        throw new KtstrError(`cannot put ${abs} into the guest image: only regular files, directories and symlinks are copied`)
      }
    }
    this.done.set(abs, real)
    return real
  }

  /**
   * Adds `hostDir` and everything below it that `filter` accepts (a rejected directory is pruned).
   * `hostDir` itself may be (or pass through) a symlink: it is resolved as in `add`. Symlinks below
   * it are copied as symlinks and never followed: one pointing inside the folder finds its target
   * there, one pointing outside (to `/`, to ~/.ssh) brings nothing of the host along.
   */
  addDir(hostDir: string, filter?: PathFilter): void {
    const root = this.add(hostDir)
    if (!fs.statSync(root).isDirectory()) throw new KtstrError(`cannot put ${hostDir} into the guest image as a directory: it is not one`)
    const walk = (dir: string) => {
      for (const name of readdir(dir)) {
        const p = path.join(dir, name)
        const st = fs.lstatSync(p, { throwIfNoEntry: false })
        if (!st) continue // gone since the listing (e.g. a process's folder in /proc)
        if (filter && !filter(p, st)) continue
        if (st.isSymbolicLink()) {
          this.put(p, { kind: 'symlink', target: fs.readlinkSync(p) })
        } else if (st.isDirectory()) {
          if (!this.map.has(p)) this.put(p, { kind: 'dir', mode: st.mode & 0o7777 })
          walk(p)
        } else if (st.isFile()) {
          this.putFile(p, st)
        } else {
          log.debug(`guest image: skipping ${p} (not a file, directory or symlink)`)
        }
      }
    }
    walk(root)
  }

  /** A file with the given content at `guestPath` (symlinked parents already in the tree are followed). */
  addData(guestPath: string, data: Buffer | string, mode = 0o644): void {
    this.put(this.resolveParent(guestPath), { kind: 'data', mode, data: typeof data === 'string' ? Buffer.from(data) : data })
  }

  /** A file at `guestPath` whose content is streamed from `hostPath` at write time. */
  addFileAs(guestPath: string, hostPath: string, mode?: number): void {
    const st = fs.statSync(hostPath)
    this.put(this.resolveParent(guestPath), {
      kind: 'file',
      mode: mode ?? st.mode & 0o7777,
      source: hostPath,
      size: st.size,
      mtimeMs: st.mtimeMs,
    })
  }

  addSymlink(guestPath: string, target: string): void {
    this.put(this.resolveParent(guestPath), { kind: 'symlink', target })
  }

  /** A character device node (e.g. /dev/console 5:1). */
  addDev(guestPath: string, major: number, minor: number, mode = 0o600): void {
    this.put(this.resolveParent(guestPath), { kind: 'chardev', mode, major, minor })
  }

  /** An (empty unless filled) directory that need not exist on the host, e.g. /proc. */
  addGuestDir(guestPath: string, mode = 0o755): void {
    const g = this.resolveParent(guestPath)
    const e = this.map.get(g)
    if (e?.kind === 'dir') e.mode = mode
    else this.put(g, { kind: 'dir', mode })
  }

  /** Feeds a description of every entry (paths, modes, sources with size and mtime, data) into `h`. */
  fingerprint(h: Hash): void {
    for (const p of this.paths()) {
      const e = this.map.get(p)!
      h.update(`${p}\0${e.kind}\0`)
      switch (e.kind) {
        case 'dir':
          h.update(`${e.mode}`)
          break
        case 'file':
          h.update(`${e.mode}\0${e.source}\0${e.size}\0${e.mtimeMs}`)
          break
        case 'data':
          h.update(`${e.mode}\0${e.data.length}\0`).update(e.data)
          break
        case 'symlink':
          h.update(e.target)
          break
        case 'chardev':
          h.update(`${e.mode}\0${e.major}:${e.minor}`)
          break
      }
      h.update('\n')
    }
  }

  /** Writes the tree as a newc archive to `outPath` (streamed from the host files). Returns its size in bytes. */
  async writeCpio(outPath: string, opts: WriteOptions = {}): Promise<number> {
    const fh = await fs.promises.open(outPath, opts.append ? 'a' : 'w', 0o644)
    try {
      const w = new CpioWriter(new FileSink(fh), opts.firstInode === undefined ? {} : { firstInode: opts.firstInode })
      for (const p of this.paths()) {
        const e = this.map.get(p)!
        switch (e.kind) {
          case 'dir':
            await w.dir(p, e.mode)
            break
          case 'file':
            if (!this.opts.omit?.has(p)) await w.fileFromPath(p, e.source, e.mode)
            break
          case 'data':
            await w.file(p, e.data, e.mode)
            break
          case 'symlink':
            await w.symlink(p, e.target)
            break
          case 'chardev':
            await w.charDev(p, e.major, e.minor, e.mode)
            break
        }
      }
      return await w.finish()
    } finally {
      await fh.close()
    }
  }

  private putFile(p: string, st: fs.Stats, source?: string): void {
    if (source) {
      const s = fs.statSync(source)
      this.remove(p)
      this.put(p, { kind: 'file', mode: st.mode & 0o7777, source, size: s.size, mtimeMs: s.mtimeMs })
    } else if (!this.map.has(p)) {
      this.put(p, { kind: 'file', mode: st.mode & 0o7777, source: p, size: st.size, mtimeMs: st.mtimeMs })
    }
  }

  private put(guestPath: string, e: TreeEntry): void {
    const p = path.posix.normalize(guestPath)
    if (p === '/') return
    const old = this.map.get(p)
    if (old && old.kind !== e.kind) {
      throw new KtstrError(`guest image: ${p} is added both as a ${old.kind} and as a ${e.kind}`)
    }
    if (old?.kind === 'symlink' && e.kind === 'symlink' && old.target !== e.target) {
      throw new KtstrError(`guest image: symlink ${p} is added with two targets (${old.target}, ${e.target})`)
    }
    if (e.kind === 'file' && e.size > MAX_FILE) {
      throw new KtstrError(`cannot put ${e.source} into the guest image: it is ${e.size} bytes, over the 4 GiB an initramfs file can hold; put it on a disk image (--disk)`)
    }
    if (old) this.remove(p)
    this.map.set(p, e)
    this.account(p, e, 1)
    this.opts.limit?.(this.cost())
  }

  private remove(p: string): void {
    const old = this.map.get(p)
    if (!old) return
    this.map.delete(p)
    this.account(p, old, -1)
  }

  private account(p: string, e: TreeEntry, sign: 1 | -1): void {
    if (e.kind === 'file' && this.opts.omit?.has(p)) return
    const c = entryCost(p, e)
    this.total.archive += sign * c.archive
    this.total.unpacked += sign * c.unpacked
  }

  /** `guestPath` with symlinks in its parent directories (as recorded in the tree) replaced by their targets. */
  private resolveParent(guestPath: string): string {
    let dir = '/'
    const parts = path.posix
      .resolve('/', guestPath)
      .split('/')
      .filter((c) => c !== '')
    let hops = 0
    while (parts.length > 1) {
      const cand = path.posix.join(dir, parts.shift()!)
      const e = this.map.get(cand)
      if (e?.kind === 'symlink') {
        if (++hops > 40) throw new KtstrError(`guest image: too many levels of symlinks resolving ${guestPath}`)
        const t = path.posix.resolve(dir, e.target)
        parts.unshift(...t.split('/').filter((c) => c !== ''))
        dir = '/'
      } else {
        dir = cand
      }
    }
    return path.posix.join(dir, parts[0] ?? '')
  }
}

/**
 * One entry's newc bytes (header, name and data, each padded to 4) and its RAM in the guest's
 * initramfs, a tmpfs: data in whole 4 KiB pages, and at least one page per entry, because tmpfs
 * allows as many inodes as pages (nr_inodes = size/4096 in /proc/mounts), so summing this bounds both.
 */
export function entryCost(guestPath: string, e: TreeEntry): TreeCost {
  const data = e.kind === 'file' ? e.size : e.kind === 'data' ? e.data.length : e.kind === 'symlink' ? Buffer.byteLength(e.target) : 0
  const name = Buffer.byteLength(guestPath.replace(/^\/+/, '')) + 1
  return { archive: pad4(110 + name) + pad4(data), unpacked: Math.max(1, Math.ceil(data / PAGE)) * PAGE }
}

function pad4(n: number): number {
  return Math.ceil(n / 4) * 4 // not a bit mask: sizes reach 4 GiB
}

/** Sorted names in `dir`; an unreadable folder is a one-line error. */
function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort()
  } catch (e) {
    throw new KtstrError(`cannot read ${dir} for the guest image (${(e as NodeJS.ErrnoException).code}); leave it out of --include`, { cause: e })
  }
}

/** Orders paths so that a directory comes before everything below it. */
function byComponents(a: string, b: string): number {
  const x = a.replaceAll('/', '\0')
  const y = b.replaceAll('/', '\0')
  return x < y ? -1 : x > y ? 1 : 0
}
