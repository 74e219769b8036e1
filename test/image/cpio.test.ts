import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ByteSink, CpioWriter, FileSink, MemorySink, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG } from '../../src/image/cpio.js'
import { cpio, hasCpio, isRoot, listNames, listVerbose, rawEntries, tmpDir } from './helpers.js'

if (!hasCpio) console.warn('skipping cpio round-trip tests: GNU cpio is not installed (apt-get install cpio)')
if (!isRoot) console.warn('skipping device-node extraction: cpio -i can only mknod as root')

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Records the largest chunk handed to the sink, to show big files pass through in pieces. */
class RecordingSink implements ByteSink {
  maxChunk = 0
  constructor(private readonly inner: ByteSink) {}
  async write(chunk: Buffer) {
    this.maxChunk = Math.max(this.maxChunk, chunk.length)
    await this.inner.write(chunk)
  }
  async flush() {
    await this.inner.flush?.()
  }
}

describe('CpioWriter', () => {
  let dir: string
  let bigPath: string
  let big: Buffer
  let archive: string
  let bytes: number
  let maxChunk: number

  beforeAll(async () => {
    dir = tmpDir('cpio')
    big = randomBytes(20 * 1024 * 1024 + 3) // odd size: the data needs padding
    bigPath = path.join(dir, 'big.bin')
    fs.writeFileSync(bigPath, big, { mode: 0o640 })
    archive = path.join(dir, 'out.cpio')
    const fh = await fs.promises.open(archive, 'w')
    const sink = new RecordingSink(new FileSink(fh))
    const w = new CpioWriter(sink)
    await w.dir('/etc', 0o755)
    await w.file('/etc/hello.txt', 'hello\n', 0o600)
    await w.file('/a/b/c/deep.txt', Buffer.from('x'), 0o644) // a, a/b, a/b/c emitted implicitly
    await w.dir('/a/b', 0o700) // already emitted as a parent: no second entry
    await w.fileFromPath('/data/big.bin', bigPath)
    await w.symlink('/bin', 'usr/bin')
    await w.symlink('/etc/abs-link', '/etc/hello.txt')
    await w.dir('/dev')
    await w.charDev('/dev/console', 5, 1, 0o600)
    await w.charDev('/dev/null', 1, 3, 0o666)
    await w.file('/empty', Buffer.alloc(0))
    bytes = await w.finish()
    await fh.close()
    maxChunk = sink.maxChunk
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('writes 4-byte aligned newc headers with mtime 0, unique inodes and a trailer', () => {
    const buf = fs.readFileSync(archive)
    expect(buf.length).toBe(bytes)
    expect(bytes % 4).toBe(0)
    const { entries, end } = rawEntries(buf)
    expect(end).toBe(buf.length)
    for (const e of entries) {
      expect(e.offset % 4).toBe(0)
      expect(e.dataOffset % 4).toBe(0)
      expect(e.mtime).toBe(0)
    }
    const trailer = entries.at(-1)!
    expect(trailer.name).toBe('TRAILER!!!')
    const real = entries.slice(0, -1)
    expect(new Set(real.map((e) => e.ino)).size).toBe(real.length)
    expect(real.every((e) => !e.name.startsWith('/'))).toBe(true)
  })

  it('emits each parent directory once, before its children', () => {
    const names = rawEntries(fs.readFileSync(archive)).entries.map((e) => e.name)
    for (const d of ['a', 'a/b', 'a/b/c', 'data', 'etc', 'dev']) expect(names.filter((n) => n === d)).toHaveLength(1)
    names.forEach((n, i) => {
      const parent = path.posix.dirname(n)
      if (parent !== '.' && n !== 'TRAILER!!!') expect(names.indexOf(parent), `${parent} before ${n}`).toBeLessThan(i)
    })
  })

  it('stores file types, modes and device numbers in the header', () => {
    const byName = new Map(rawEntries(fs.readFileSync(archive)).entries.map((e) => [e.name, e]))
    expect(byName.get('etc/hello.txt')!.mode).toBe(S_IFREG | 0o600)
    expect(byName.get('data/big.bin')!.mode).toBe(S_IFREG | 0o640) // the host file's mode
    expect(byName.get('data/big.bin')!.size).toBe(big.length)
    expect(byName.get('a/b')!.mode).toBe(S_IFDIR | 0o755)
    expect(byName.get('bin')!.mode).toBe(S_IFLNK | 0o777)
    expect(byName.get('dev/console')).toMatchObject({ mode: S_IFCHR | 0o600, rdevmajor: 5, rdevminor: 1 })
    expect(byName.get('dev/null')).toMatchObject({ mode: S_IFCHR | 0o666, rdevmajor: 1, rdevminor: 3 })
  })

  it('streams a large host file in chunks instead of reading it whole', () => {
    expect(maxChunk).toBeLessThanOrEqual(1 << 20)
  })

  it.skipIf(!hasCpio)('is listed by GNU cpio -tv with symlinks and device nodes', () => {
    const names = listNames(archive)
    expect(names).toEqual(expect.arrayContaining(['etc/hello.txt', 'a/b/c/deep.txt', 'data/big.bin', 'bin', 'dev/console', 'dev/null', 'empty']))
    const v = listVerbose(archive)
    expect(v.get('bin')).toMatch(/^lrwxrwxrwx .* bin -> usr\/bin$/)
    expect(v.get('etc/abs-link')).toMatch(/etc\/abs-link -> \/etc\/hello\.txt$/)
    expect(v.get('dev/console')).toMatch(/^crw------- .*\b5,\s+1 /)
    expect(v.get('dev/null')).toMatch(/^crw-rw-rw- .*\b1,\s+3 /)
    expect(v.get('data/big.bin')).toMatch(new RegExp(`^-rw-r----- .* ${big.length} `))
    expect(v.get('etc/hello.txt')).toMatch(/ Jan\s+1\s+1970 etc\/hello\.txt$/) // mtime 0
  })

  it.skipIf(!hasCpio)('is extracted by GNU cpio -idv with identical contents', () => {
    const out = tmpDir('cpio-x')
    try {
      const r = cpio(['-idv', '--no-absolute-filenames'], archive, out)
      if (isRoot) expect(r.status, r.err).toBe(0)
      expect(sha(fs.readFileSync(path.join(out, 'data/big.bin')))).toBe(sha(big))
      expect(fs.readFileSync(path.join(out, 'etc/hello.txt'), 'utf8')).toBe('hello\n')
      expect(fs.statSync(path.join(out, 'etc/hello.txt')).mode & 0o7777).toBe(0o600)
      expect(fs.readFileSync(path.join(out, 'a/b/c/deep.txt'), 'utf8')).toBe('x')
      expect(fs.readlinkSync(path.join(out, 'bin'))).toBe('usr/bin')
      expect(fs.readFileSync(path.join(out, 'empty')).length).toBe(0)
      if (isRoot) {
        const st = fs.lstatSync(path.join(out, 'dev/null'))
        expect(st.isCharacterDevice()).toBe(true)
        expect(st.rdev).toBe((1 << 8) | 3)
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  })

  it('gives byte-identical archives for identical input (reproducible)', async () => {
    const make = async () => {
      const s = new MemorySink()
      const w = new CpioWriter(s)
      await w.file('/x/y', 'same', 0o644)
      await w.symlink('/x/z', 'y')
      await w.fileFromPath('/x/big', bigPath)
      await w.finish()
      return s.toBuffer()
    }
    const [a, b] = [await make(), await make()]
    expect(a.length).toBeGreaterThan(big.length)
    expect(a.equals(b)).toBe(true)
  })

  it('rejects duplicates, children of non-directories and writes after finish', async () => {
    const w = new CpioWriter(new MemorySink())
    await w.file('/f', 'x')
    await expect(w.file('/f', 'y')).rejects.toThrow(/duplicate entry f/)
    await expect(w.file('/f/g', 'y')).rejects.toThrow(/not a directory/)
    await expect(w.dir('/f')).rejects.toThrow(/non-directory/)
    await w.finish()
    await expect(w.file('/h', 'y')).rejects.toThrow(/after finish/)
  })

  it('numbers inodes from firstInode', async () => {
    const s = new MemorySink()
    const w = new CpioWriter(s, { firstInode: 1000 })
    await w.file('/a', 'x')
    await w.file('/b', 'y')
    await w.finish()
    expect(
      rawEntries(s.toBuffer())
        .entries.slice(0, -1)
        .map((e) => e.ino),
    ).toEqual([1000, 1001])
  })
})
