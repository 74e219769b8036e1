import fs from 'node:fs'
import path from 'node:path'

// File type bits (sys/stat.h), as stored in c_mode.
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000
export const S_IFCHR = 0o020000

/** Where archive bytes go. `write` may keep a reference to `chunk` only until its promise settles. */
export interface ByteSink {
  write(chunk: Buffer): Promise<void>
  /** Pushes out anything buffered; called by `CpioWriter.finish`. */
  flush?(): Promise<void>
}

/** Collects the archive in memory (for the small per-run archive). */
export class MemorySink implements ByteSink {
  private readonly chunks: Buffer[] = []
  async write(chunk: Buffer): Promise<void> {
    this.chunks.push(Buffer.from(chunk)) // copy: the writer reuses its read buffer
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks)
  }
}

/** Appends to an open file, batching the many small headers into 1 MiB writes. */
export class FileSink implements ByteSink {
  private readonly stage = Buffer.alloc(1 << 20)
  private used = 0
  constructor(private readonly fh: fs.promises.FileHandle) {}

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length > this.stage.length - this.used) await this.flush()
    if (chunk.length >= this.stage.length) return writeAll(this.fh, chunk)
    chunk.copy(this.stage, this.used)
    this.used += chunk.length
  }

  async flush(): Promise<void> {
    if (this.used === 0) return
    await writeAll(this.fh, this.stage.subarray(0, this.used))
    this.used = 0
  }
}

async function writeAll(fh: fs.promises.FileHandle, buf: Buffer): Promise<void> {
  let off = 0
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off)
    off += bytesWritten
  }
}

export interface CpioWriterOptions {
  /** First inode number (default 1). Give a later archive in a concatenation a disjoint range. */
  firstInode?: number
}

type Kind = 'dir' | 'other'

/**
 * Streaming writer of the SVR4 "newc" cpio format the kernel unpacks as initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): 110-byte ASCII-hex header,
 * NUL-terminated name, both padded to 4 bytes, then the data padded to 4 bytes; ends with TRAILER!!!.
 * Every entry has uid/gid 0 and mtime 0 so equal inputs give equal archives. Names are stored without
 * the leading '/'. Missing parent directories are emitted (mode 0755) before their children, once.
 */
export class CpioWriter {
  private ino: number
  private written = 0
  private count = 0
  private readonly names = new Map<string, Kind>()
  private readonly pad = Buffer.alloc(4)
  private finished = false

  constructor(
    private readonly sink: ByteSink,
    opts: CpioWriterOptions = {},
  ) {
    this.ino = opts.firstInode ?? 1
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.written
  }

  /** Entries written so far (without the trailer). */
  get entries(): number {
    return this.count
  }

  /** Whether an entry (or an implied parent directory) with this name was written. */
  has(name: string): boolean {
    return this.names.has(normalize(name))
  }

  /** A directory; writing the same directory again is a no-op. */
  async dir(name: string, mode = 0o755): Promise<void> {
    const n = normalize(name)
    if (n === '') return
    const kind = this.names.get(n)
    if (kind === 'dir') return
    if (kind) throw new Error(`cpio: ${n} was already written as a non-directory`)
    await this.parents(n)
    this.names.set(n, 'dir')
    await this.entry(n, S_IFDIR | (mode & 0o7777), 2, 0, 0, 0)
  }

  /** A regular file with the given content. */
  async file(name: string, content: Buffer | string, mode = 0o644): Promise<void> {
    const data = typeof content === 'string' ? Buffer.from(content) : content
    const n = await this.claim(name)
    await this.entry(n, S_IFREG | (mode & 0o7777), 1, data.length, 0, 0)
    await this.data(data)
  }

  /** A regular file whose content is streamed from `hostPath` (mode defaults to the host file's). */
  async fileFromPath(name: string, hostPath: string, mode?: number): Promise<void> {
    const fh = await fs.promises.open(hostPath, 'r')
    try {
      const st = await fh.stat()
      if (!st.isFile()) throw new Error(`cpio: ${hostPath} is not a regular file`)
      const n = await this.claim(name)
      await this.entry(n, S_IFREG | ((mode ?? st.mode) & 0o7777), 1, st.size, 0, 0)
      const buf = Buffer.alloc(Math.min(1 << 20, Math.max(st.size, 1)))
      let left = st.size
      while (left > 0) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), st.size - left)
        if (bytesRead === 0) throw new Error(`cpio: ${hostPath} shrank while it was being archived`)
        await this.sink.write(buf.subarray(0, bytesRead))
        this.written += bytesRead
        left -= bytesRead
      }
      await this.align()
    } finally {
      await fh.close()
    }
  }

  /** A symbolic link; its target is stored as the entry's data, verbatim. */
  async symlink(name: string, target: string): Promise<void> {
    const n = await this.claim(name)
    const data = Buffer.from(target)
    await this.entry(n, S_IFLNK | 0o777, 1, data.length, 0, 0)
    await this.data(data)
  }

  /** A character device node, e.g. /dev/console 5:1 or /dev/null 1:3. */
  async charDev(name: string, major: number, minor: number, mode = 0o600): Promise<void> {
    const n = await this.claim(name)
    await this.entry(n, S_IFCHR | (mode & 0o7777), 1, 0, major, minor)
  }

  /** Writes the TRAILER!!! entry. Returns the archive size (a multiple of 4). */
  async finish(): Promise<number> {
    if (this.finished) throw new Error('cpio: finish() called twice')
    this.finished = true
    await this.header('TRAILER!!!', 0, 0, 1, 0, 0, 0)
    await this.sink.flush?.()
    return this.written
  }

  private async claim(name: string): Promise<string> {
    const n = normalize(name)
    if (n === '') throw new Error('cpio: an entry needs a name below /')
    if (this.names.has(n)) throw new Error(`cpio: duplicate entry ${n}`)
    await this.parents(n)
    this.names.set(n, 'other')
    return n
  }

  private async parents(n: string): Promise<void> {
    const parts = n.split('/')
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/')
      const kind = this.names.get(p)
      if (kind === 'dir') continue
      if (kind) throw new Error(`cpio: ${n} is below ${p}, which is not a directory`)
      this.names.set(p, 'dir')
      await this.entry(p, S_IFDIR | 0o755, 2, 0, 0, 0)
    }
  }

  private async entry(name: string, mode: number, nlink: number, size: number, rmaj: number, rmin: number): Promise<void> {
    if (this.finished) throw new Error('cpio: entry after finish()')
    if (size > 0xffffffff) throw new Error(`cpio: ${name} is ${size} bytes; newc stores sizes in 32 bits`)
    this.count++
    await this.header(name, this.ino++, mode, nlink, size, rmaj, rmin)
  }

  private async header(name: string, ino: number, mode: number, nlink: number, size: number, rmaj: number, rmin: number) {
    const nameBytes = Buffer.from(`${name}\0`)
    const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rmaj, rmin, nameBytes.length, 0]
    const head = `070701${fields.map((v) => v.toString(16).toUpperCase().padStart(8, '0')).join('')}`
    const total = head.length + nameBytes.length
    const buf = Buffer.alloc(total + padLen(total))
    buf.write(head, 0, 'latin1')
    nameBytes.copy(buf, head.length)
    await this.sink.write(buf)
    this.written += buf.length
  }

  private async data(data: Buffer): Promise<void> {
    if (data.length > 0) await this.sink.write(data)
    this.written += data.length
    await this.align()
  }

  private async align(): Promise<void> {
    const n = padLen(this.written)
    if (n === 0) return
    await this.sink.write(this.pad.subarray(0, n))
    this.written += n
  }
}

function padLen(n: number): number {
  return (4 - (n % 4)) % 4
}

/** '/usr/bin/node' → 'usr/bin/node' ('..' cannot climb above the root). */
function normalize(name: string): string {
  return path.posix.normalize(`/${name}`).replace(/^\/+/, '').replace(/\/+$/, '')
}
