// fileSha256 (src/util/file-hash.ts) remembers a file's hash on disk for the next process while the
// file stays the same one, and never serves it for a file that was written since. Each "process"
// below is a fresh copy of the module (vi.resetModules), so only the memo on disk carries over.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-file-hash-'))
const cache = path.join(dir, 'cache')
const savedXdg = process.env.XDG_CACHE_HOME
beforeAll(() => {
  process.env.XDG_CACHE_HOME = cache
})
afterAll(() => {
  if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME
  else process.env.XDG_CACHE_HOME = savedXdg
  fs.rmSync(dir, { recursive: true, force: true })
})

const sha = (s: string) => createHash('sha256').update(s).digest('hex')

async function freshProcess(): Promise<typeof import('../../src/util/file-hash.js')> {
  vi.resetModules()
  return import('../../src/util/file-hash.js')
}

function memoFiles(): string[] {
  const d = path.join(cache, 'ktstr', 'hashes')
  return fs.existsSync(d) ? fs.readdirSync(d).map((f) => path.join(d, f)) : []
}

describe('fileSha256', () => {
  it('hashes by content, keeps the hash for the next process, and hashes a rewritten file again', async () => {
    const f = path.join(dir, 'bzImage')
    fs.writeFileSync(f, 'kernel one')
    const sameTime = 1_700_000_000 // whole seconds: utimes puts it back exactly below
    fs.utimesSync(f, sameTime, sameTime)
    expect((await freshProcess()).fileSha256(f)).toBe(sha('kernel one'))
    const [memo] = memoFiles()
    expect(memo).toBeDefined()

    // The next process takes the memo without reading the file: a planted hash shows it does.
    const planted = 'f'.repeat(64)
    const v = JSON.parse(fs.readFileSync(memo!, 'utf8'))
    fs.writeFileSync(memo!, JSON.stringify({ ...v, value: planted }))
    expect((await freshProcess()).fileSha256(f)).toBe(planted)

    // Rewritten with the same size and its modification time put back: its change time moved.
    fs.writeFileSync(f, 'kernel two')
    fs.utimesSync(f, sameTime, sameTime)
    expect(fs.statSync(f, { bigint: true }).mtimeNs).toBe(BigInt(sameTime) * 1_000_000_000n)
    expect((await freshProcess()).fileSha256(f)).toBe(sha('kernel two'))

    // Replaced by another file (a rename over it): another inode.
    fs.writeFileSync(`${f}.new`, 'kernel 3!!')
    fs.renameSync(`${f}.new`, f)
    expect((await freshProcess()).fileSha256(f)).toBe(sha('kernel 3!!'))
  })

  it('hashes again when the memo is garbage, and writes a good one', async () => {
    const f = path.join(dir, 'other')
    fs.writeFileSync(f, 'abc')
    const first = await freshProcess()
    expect(first.fileSha256(f)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    const memo = memoFiles().find((m) => fs.readFileSync(m, 'utf8').includes(path.resolve(f)))!
    for (const junk of ['', '{', JSON.stringify({ id: 'x', value: 'nothex' }), '[]']) {
      fs.writeFileSync(memo, junk)
      expect((await freshProcess()).fileSha256(f)).toBe(sha('abc'))
      expect(JSON.parse(fs.readFileSync(memo, 'utf8')).value).toBe(sha('abc'))
    }
  })

  it('still hashes when the cache cannot be written', async () => {
    const f = path.join(dir, 'ro')
    fs.writeFileSync(f, 'xyz')
    fs.writeFileSync(path.join(dir, 'not-a-dir'), '')
    process.env.XDG_CACHE_HOME = path.join(dir, 'not-a-dir')
    try {
      expect((await freshProcess()).fileSha256(f)).toBe(sha('xyz'))
    } finally {
      process.env.XDG_CACHE_HOME = cache
    }
  })
})
