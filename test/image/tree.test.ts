import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GuestTree } from '../../src/image/tree.js'
import { KtstrError } from '../../src/util/errors.js'
import { cpio, hasCpio, tmpDir } from './helpers.js'

if (!hasCpio) console.warn('skipping tree extraction test: GNU cpio is not installed (apt-get install cpio)')

// Layout made for these tests (root = real path of a fresh temp dir):
//   real/sub/file.txt   real/sub/skip.map   real/data.bin
//   link -> real                 (a symlinked parent directory)
//   alias.txt -> real/sub/file.txt   (a final symlink, relative)
//   abs -> <root>/real/sub           (an absolute symlink to a directory)
let root: string
beforeAll(() => {
  root = fs.realpathSync(tmpDir('tree'))
  fs.mkdirSync(path.join(root, 'real/sub'), { recursive: true })
  fs.writeFileSync(path.join(root, 'real/sub/file.txt'), 'content\n', { mode: 0o640 })
  fs.writeFileSync(path.join(root, 'real/sub/skip.map'), '{}')
  fs.writeFileSync(path.join(root, 'real/data.bin'), 'data')
  fs.symlinkSync('real', path.join(root, 'link'))
  fs.symlinkSync('real/sub/file.txt', path.join(root, 'alias.txt'))
  fs.symlinkSync(path.join(root, 'real/sub'), path.join(root, 'abs'))
})
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

describe('GuestTree', () => {
  it('mirrors a symlinked parent as a symlink and puts the file at its real path', () => {
    const t = new GuestTree()
    const real = t.add(path.join(root, 'link/sub/file.txt'))
    expect(real).toBe(path.join(root, 'real/sub/file.txt'))
    expect(t.get(path.join(root, 'link'))).toEqual({ kind: 'symlink', target: 'real' })
    expect(t.get(path.join(root, 'real'))?.kind).toBe('dir')
    expect(t.get(path.join(root, 'real/sub'))?.kind).toBe('dir')
    expect(t.get(path.join(root, 'real/sub/file.txt'))).toMatchObject({ kind: 'file', mode: 0o640, size: 8 })
    expect(t.get(path.join(root, 'link/sub'))).toBeUndefined()
    // every parent up to / is present
    for (let d = root; d !== '/'; d = path.dirname(d)) expect(t.get(d)?.kind, d).toMatch(/dir|symlink/)
    expect(t.has(path.join(root, 'link/sub/file.txt'))).toBe(true)
  })

  it('adds a final symlink and its target', () => {
    const t = new GuestTree()
    t.add(path.join(root, 'alias.txt'))
    expect(t.get(path.join(root, 'alias.txt'))).toEqual({ kind: 'symlink', target: 'real/sub/file.txt' })
    expect(t.get(path.join(root, 'real/sub/file.txt'))?.kind).toBe('file')
  })

  it.skipIf(!fs.lstatSync('/lib64', { throwIfNoEntry: false })?.isSymbolicLink())('mirrors the merged-/usr chain of the ELF interpreter', () => {
    const t = new GuestTree()
    t.add('/lib64/ld-linux-x86-64.so.2')
    expect(t.get('/lib64')?.kind).toBe('symlink')
    const real = fs.realpathSync('/lib64/ld-linux-x86-64.so.2')
    expect(t.get(real)?.kind).toBe('file')
    // each symlink on the way (e.g. /usr/lib64/ld-linux… → /lib/x86_64-linux-gnu/…, then /lib → usr/lib) is kept
    for (const p of t.paths()) {
      const e = t.get(p)!
      if (e.kind === 'symlink') expect(fs.readlinkSync(p)).toBe(e.target)
      else expect(fs.lstatSync(p).isSymbolicLink()).toBe(false)
    }
  })

  it('addDir walks recursively, follows a symlinked directory and applies the filter', () => {
    const t = new GuestTree()
    t.addDir(path.join(root, 'abs'), (p) => !p.endsWith('.map'))
    expect(t.get(path.join(root, 'abs'))?.kind).toBe('symlink')
    expect(t.get(path.join(root, 'real/sub/file.txt'))?.kind).toBe('file')
    expect(t.get(path.join(root, 'real/sub/skip.map'))).toBeUndefined()
    expect(t.get(path.join(root, 'real/data.bin'))).toBeUndefined() // outside the walked folder
  })

  it('places data, symlinks and devices through symlinked parents already in the tree', () => {
    const t = new GuestTree()
    t.add(path.join(root, 'link'))
    t.addData(path.join(root, 'link/new.json'), '{}', 0o600)
    expect(t.get(path.join(root, 'real/new.json'))).toMatchObject({ kind: 'data', mode: 0o600 })
    expect(t.has(path.join(root, 'link/new.json'))).toBe(true)
    t.addSymlink('/x/sh', '/ktstr/bin/busybox')
    t.addDev('/dev/null', 1, 3, 0o666)
    expect(t.get('/dev/null')).toEqual({ kind: 'chardev', major: 1, minor: 3, mode: 0o666 })
  })

  it('refuses one path as two kinds, dangling links and missing files', () => {
    const t = new GuestTree()
    t.add(path.join(root, 'real/sub'))
    expect(() => t.addData(path.join(root, 'real/sub'), 'x')).toThrow(/added both as a dir and as a data/)
    fs.symlinkSync('nowhere', path.join(root, 'dangling'))
    expect(() => t.add(path.join(root, 'dangling'))).toThrow(KtstrError)
    expect(() => t.add(path.join(root, 'dangling'))).toThrow(/does not resolve/)
    expect(() => t.add(path.join(root, 'missing.txt'))).toThrow(/missing\.txt does not exist/)
    fs.rmSync(path.join(root, 'dangling'))
  })

  it('lists parents before children', () => {
    const t = new GuestTree()
    t.add(path.join(root, 'link/sub/file.txt'))
    t.addData('/a.b/c', 'x')
    t.addData('/a/b', 'y')
    const ps = t.paths()
    ps.forEach((p, i) => {
      const parent = path.posix.dirname(p)
      if (parent !== '/' && t.get(parent)) expect(ps.indexOf(parent)).toBeLessThan(i)
    })
  })

  it.skipIf(!hasCpio)('writes a cpio in which both spellings of the path work after extraction', async () => {
    const t = new GuestTree()
    t.add(path.join(root, 'link/sub/file.txt'))
    const archive = path.join(root, 'tree.cpio')
    await t.writeCpio(archive)
    const out = tmpDir('tree-x')
    try {
      const r = cpio(['-id', '--quiet'], archive, out)
      expect(r.status, r.err).toBe(0)
      const inOut = (p: string) => path.join(out, p)
      expect(fs.lstatSync(inOut(path.join(root, 'link'))).isSymbolicLink()).toBe(true)
      expect(fs.readFileSync(inOut(path.join(root, 'link/sub/file.txt')), 'utf8')).toBe('content\n')
      expect(fs.readFileSync(inOut(path.join(root, 'real/sub/file.txt')), 'utf8')).toBe('content\n')
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  })
})
