// Copying a guest's RAM file (src/util/sparse-copy.ts): holes stay holes, and copyDataInto fills a
// file another process may already map without ever truncating it.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../../native-shims/constants.js'
import { mmap, munmap, view } from '../../native-shims/libc.js'
import { copyDataInto, copySparse } from '../../src/util/sparse-copy.js'

const MiB = 1 << 20
let dir: string
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

/** A 64 MiB sparse file with data at its start, across an 8 MiB chunk boundary, and at its end. */
function sparseSource(): { file: string; pieces: [number, Buffer][] } {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-sparse-'))
  const file = path.join(dir, 'src')
  const pieces: [number, Buffer][] = [
    [0, Buffer.alloc(4096, 0xaa)],
    [8 * MiB - 4096, Buffer.alloc(3 * 4096, 0xbb)], // straddles a copy chunk
    [20 * MiB, Buffer.from(Array.from({ length: 9 * MiB }, (_, i) => (i * 7) & 0xff))], // more than a chunk
    [64 * MiB - 4096, Buffer.alloc(4096, 0xcc)],
  ]
  const fd = fs.openSync(file, 'w')
  fs.ftruncateSync(fd, 64 * MiB)
  for (const [at, b] of pieces) fs.writeSync(fd, b, 0, b.length, at)
  fs.closeSync(fd)
  return { file, pieces }
}

const blocksOf = (f: string) => fs.statSync(f).blocks

describe('sparse copies', () => {
  it('copyDataInto writes the data at its offsets into a mapped file of the same size, holes left holes', async () => {
    const { file, pieces } = sparseSource()
    const dst = path.join(dir, 'dst')
    const fd = fs.openSync(dst, 'w+')
    fs.ftruncateSync(fd, 64 * MiB)
    // Mapped as QEMU maps it while the copy runs: a truncation would make this view fault (SIGBUS).
    const addr = mmap(64 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    fs.closeSync(fd)
    try {
      const ino = fs.statSync(dst).ino
      await copyDataInto(file, dst)
      expect(fs.statSync(dst).ino).toBe(ino)
      expect(fs.statSync(dst).size).toBe(64 * MiB)
      expect(Buffer.from(view(addr, 64 * MiB)).equals(fs.readFileSync(file))).toBe(true)
      for (const [at, b] of pieces) expect(Buffer.from(view(addr + BigInt(at), b.length)).equals(b)).toBe(true)
      // The holes were not written: about as many blocks as the source's data.
      expect(blocksOf(dst)).toBeLessThan(blocksOf(file) + 2048)
    } finally {
      munmap(addr, 64 * MiB)
    }
  })

  it('copyDataInto refuses files of different sizes, naming both', async () => {
    const { file } = sparseSource()
    const dst = path.join(dir, 'short')
    fs.writeFileSync(dst, Buffer.alloc(4096))
    await expect(copyDataInto(file, dst)).rejects.toThrow(`cannot copy ${file} into ${dst}: ${file} is ${64 * MiB} bytes, not 4096`)
    expect(fs.statSync(dst).size).toBe(4096)
    await expect(copyDataInto(path.join(dir, 'missing'), dst)).rejects.toThrow(/ENOENT/)
  })

  it('copySparse makes a new file with the same bytes and holes', async () => {
    const { file } = sparseSource()
    const dst = path.join(dir, 'copy')
    await copySparse(file, dst)
    expect(fs.readFileSync(dst).equals(fs.readFileSync(file))).toBe(true)
    expect(blocksOf(dst)).toBeLessThan(blocksOf(file) + 2048)
  })
})
