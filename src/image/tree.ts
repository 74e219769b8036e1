import fs from 'node:fs'
import path from 'node:path'
import type { Hash } from 'node:crypto'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { CpioWriter, FileSink, MemorySink, type ByteSink } from './cpio.js'

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
  /** Guest paths of regular files to leave out (already present from an earlier archive). */
  omit?: ReadonlySet<string>
}

/**
 * The set of files for a guest image, at the guest paths they will have. Host files keep their host
 * path, and symlinked host path components stay symlinks (Debian's merged /usr: /lib → usr/lib), so
 * both spellings of a path resolve in the guest as on the host.
 */
export class GuestTree {
  private readonly map = new Map<string, TreeEntry>()
  private readonly done = new Map<string, string>()

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
          throw new KtstrError(`cannot put ${abs} into the guest image: symlink ${cand} → ${target} does not resolve (${(e as NodeJS.ErrnoException).code})`, { cause: e })
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

  /** Adds `hostDir` and everything below it that `filter` accepts (a rejected directory is pruned). */
  addDir(hostDir: string, filter?: PathFilter): void {
    const root = this.add(hostDir)
    if (!fs.statSync(root).isDirectory()) throw new KtstrError(`cannot put ${hostDir} into the guest image as a directory: it is not one`)
    const visited = new Set<string>()
    const walk = (dir: string) => {
      if (visited.has(dir)) return
      visited.add(dir)
      for (const name of fs.readdirSync(dir).sort()) {
        const p = path.join(dir, name)
        const st = fs.lstatSync(p)
        if (filter && !filter(p, st)) continue
        if (st.isSymbolicLink()) {
          const real = this.add(p)
          if (fs.statSync(real).isDirectory()) walk(real)
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
      kind: 'file', mode: mode ?? st.mode & 0o7777, source: hostPath, size: st.size, mtimeMs: st.mtimeMs,
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
        case 'dir': h.update(`${e.mode}`); break
        case 'file': h.update(`${e.mode}\0${e.source}\0${e.size}\0${e.mtimeMs}`); break
        case 'data': h.update(`${e.mode}\0${e.data.length}\0`).update(e.data); break
        case 'symlink': h.update(e.target); break
        case 'chardev': h.update(`${e.mode}\0${e.major}:${e.minor}`); break
      }
      h.update('\n')
    }
  }

  /** Writes the tree as a newc archive to `outPath`. Returns its size in bytes. */
  async writeCpio(outPath: string, opts: WriteOptions = {}): Promise<number> {
    const fh = await fs.promises.open(outPath, 'w', 0o644)
    try {
      return await this.writeTo(new FileSink(fh), opts)
    } finally {
      await fh.close()
    }
  }

  /** The tree as a newc archive in memory (for small archives). */
  async toBuffer(opts: WriteOptions = {}): Promise<Buffer> {
    const sink = new MemorySink()
    await this.writeTo(sink, opts)
    return sink.toBuffer()
  }

  private async writeTo(sink: ByteSink, opts: WriteOptions): Promise<number> {
    const w = new CpioWriter(sink, opts.firstInode === undefined ? {} : { firstInode: opts.firstInode })
    for (const p of this.paths()) {
      const e = this.map.get(p)!
      switch (e.kind) {
        case 'dir': await w.dir(p, e.mode); break
        case 'file':
          if (!opts.omit?.has(p)) await w.fileFromPath(p, e.source, e.mode)
          break
        case 'data': await w.file(p, e.data, e.mode); break
        case 'symlink': await w.symlink(p, e.target); break
        case 'chardev': await w.charDev(p, e.major, e.minor, e.mode); break
      }
    }
    return w.finish()
  }

  private putFile(p: string, st: fs.Stats, source?: string): void {
    if (source) {
      const s = fs.statSync(source)
      this.map.delete(p)
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
    this.map.set(p, e)
  }

  /** `guestPath` with symlinks in its parent directories (as recorded in the tree) replaced by their targets. */
  private resolveParent(guestPath: string): string {
    let dir = '/'
    const parts = path.posix.resolve('/', guestPath).split('/').filter((c) => c !== '')
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

/** Orders paths so that a directory comes before everything below it. */
function byComponents(a: string, b: string): number {
  const x = a.replaceAll('/', '\0')
  const y = b.replaceAll('/', '\0')
  return x < y ? -1 : x > y ? 1 : 0
}
