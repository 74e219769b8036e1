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
    await extracted(t, (inOut) => {
      expect(fs.lstatSync(inOut(path.join(root, 'link'))).isSymbolicLink()).toBe(true)
      expect(fs.readFileSync(inOut(path.join(root, 'link/sub/file.txt')), 'utf8')).toBe('content\n')
      expect(fs.readFileSync(inOut(path.join(root, 'real/sub/file.txt')), 'utf8')).toBe('content\n')
    })
  })
})

/** Writes `t` as an archive, extracts it with GNU cpio and runs `check` with a host-path → extracted-path map. */
async function extracted(t: GuestTree, check: (inOut: (p: string) => string) => void): Promise<void> {
  const archive = path.join(root, 'tree.cpio')
  await t.writeCpio(archive)
  const out = tmpDir('tree-x')
  try {
    const r = cpio(['-id', '--quiet'], archive, out)
    expect(r.status, r.err).toBe(0)
    check((p) => path.join(out, p))
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
}

// An included folder with links out of it (to / and to a folder beside it, as a link to ~/.ssh
// would be) and links within it:
//   inc/sub/file.txt   inc/up -> /   inc/keys -> <root>/secret   inc/alias -> sub/file.txt
//   inc/dirlink -> sub   inc/abs -> <root>/inc/sub        secret/id_rsa (outside inc)
describe('GuestTree.addDir and symlinks in an included folder', () => {
  let inc: string
  beforeAll(() => {
    inc = path.join(root, 'inc')
    fs.mkdirSync(path.join(inc, 'sub'), { recursive: true })
    fs.mkdirSync(path.join(root, 'secret'))
    fs.writeFileSync(path.join(root, 'secret/id_rsa'), 'PRIVATE KEY')
    fs.writeFileSync(path.join(inc, 'sub/file.txt'), 'inside\n')
    fs.symlinkSync('/', path.join(inc, 'up'))
    fs.symlinkSync(path.join(root, 'secret'), path.join(inc, 'keys'))
    fs.symlinkSync('sub/file.txt', path.join(inc, 'alias'))
    fs.symlinkSync('sub', path.join(inc, 'dirlink'))
    fs.symlinkSync(path.join(inc, 'sub'), path.join(inc, 'abs'))
  })

  it('copies links to / and to a folder outside as symlinks and takes nothing from outside', () => {
    const t = new GuestTree()
    t.addDir(inc)
    expect(t.get(path.join(inc, 'up'))).toEqual({ kind: 'symlink', target: '/' })
    expect(t.get(path.join(inc, 'keys'))).toEqual({ kind: 'symlink', target: path.join(root, 'secret') })
    // Every entry is the folder, below it, or one of its parent folders.
    for (const p of t.paths()) expect(p === inc || p.startsWith(`${inc}/`) || inc.startsWith(`${p}/`), p).toBe(true)
    expect(t.get(path.join(root, 'secret/id_rsa'))).toBeUndefined()
    expect(t.get('/etc')).toBeUndefined()
  })

  it('keeps links within the folder, which resolve in the extracted image', async () => {
    const t = new GuestTree()
    t.addDir(inc)
    expect(t.get(path.join(inc, 'alias'))).toEqual({ kind: 'symlink', target: 'sub/file.txt' })
    expect(t.get(path.join(inc, 'dirlink'))).toEqual({ kind: 'symlink', target: 'sub' })
    expect(t.get(path.join(inc, 'sub/file.txt'))?.kind).toBe('file')
    if (!hasCpio) return
    await extracted(t, (x) => {
      expect(fs.readFileSync(x(path.join(inc, 'dirlink/file.txt')), 'utf8')).toBe('inside\n')
      expect(fs.readFileSync(x(path.join(inc, 'alias')), 'utf8')).toBe('inside\n')
      expect(fs.readlinkSync(x(path.join(inc, 'up')))).toBe('/')
      expect(fs.existsSync(x(path.join(root, 'secret')))).toBe(false)
    })
  })

  it('resolves the included path itself when it is a symlink', () => {
    const t = new GuestTree()
    t.addDir(path.join(inc, 'abs'))
    expect(t.get(path.join(inc, 'abs'))).toEqual({ kind: 'symlink', target: path.join(inc, 'sub') })
    expect(t.get(path.join(inc, 'sub/file.txt'))?.kind).toBe('file')
  })

  it('counts the archive and unpacked size as entries are added, leaving omitted files out', () => {
    const costs: number[] = []
    const t = new GuestTree({ omit: new Set([path.join(inc, 'sub/file.txt')]), limit: (c) => void costs.push(c.unpacked) })
    t.addData('/a', Buffer.alloc(5000))
    expect(t.cost()).toEqual({ archive: 112 + 5000, unpacked: 8192 }) // header 110 + "a\0" → 112; data in 2 pages
    t.add(path.join(inc, 'sub/file.txt'))
    expect(costs.length).toBeGreaterThan(1)
    expect(t.cost().unpacked).toBe(costs.at(-1))
    expect(t.get(path.join(inc, 'sub/file.txt'))?.kind).toBe('file')
    // The omitted file costs nothing; its parent folders a page each.
    const dirs = t.paths().filter((p) => t.get(p)?.kind === 'dir').length
    expect(t.cost().unpacked).toBe(8192 + dirs * 4096)
  })
})
