import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { libraryClosure } from '../../src/image/closure.js'
import { readElf } from '../../src/image/elf.js'
import { LdCache, parseLdCache } from '../../src/image/ldcache.js'
import { KtstrError } from '../../src/util/errors.js'
import { tmpDir } from './helpers.js'

const NODE = fs.realpathSync(process.execPath)
const BUSYBOX = '/bin/busybox'
const hasBusybox = fs.existsSync(BUSYBOX)
const hasReadelf = spawnSync('readelf', ['--version']).status === 0
const hasLdconfig = spawnSync('ldconfig', ['-p']).status === 0
const hasLdd = spawnSync('ldd', ['--version']).status === 0
const hasCache = fs.existsSync('/etc/ld.so.cache')
if (!hasBusybox) console.warn('skipping static-binary tests: /bin/busybox missing (apt-get install busybox-static)')
if (!hasReadelf) console.warn('skipping readelf cross-check: binutils not installed')
if (!hasLdconfig || !hasCache) console.warn('skipping ld.so.cache cross-check: no ldconfig or /etc/ld.so.cache')
if (!hasLdd) console.warn('skipping ldd cross-check: ldd not installed')

let dir: string
beforeAll(() => {
  dir = tmpDir('elf')
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

function hostLibc(): string {
  return LdCache.load()?.lookup('libc.so.6', 62) ?? '/lib/x86_64-linux-gnu/libc.so.6'
}

/** Copy of `src` with the first occurrence of `from` replaced by `to` (same length). */
function patched(src: string, from: string, to: string, out: string): string {
  const buf = fs.readFileSync(src)
  const at = buf.indexOf(`${from}\0`)
  expect(at, `${from} in ${src}`).toBeGreaterThan(0)
  buf.write(to, at, 'latin1')
  fs.writeFileSync(out, buf, { mode: 0o755 })
  return out
}

describe('readElf', () => {
  it('reads PT_INTERP and DT_NEEDED of node', () => {
    const info = readElf(NODE)
    expect(info.machine).toBe(62)
    expect(info.interpreter).toBe('/lib64/ld-linux-x86-64.so.2')
    expect(info.needed).toContain('libc.so.6')
    expect(info.needed).toContain('libstdc++.so.6')
    expect(info.dynamic).toBe(true)
  })

  it.skipIf(!hasReadelf)('agrees with readelf -d on DT_NEEDED and DT_SONAME', () => {
    const needed = (f: string) => [...execFileSync('readelf', ['-dW', f], { encoding: 'utf8' }).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1])
    expect(readElf(NODE).needed).toEqual(needed(NODE))
    const libc = new LdCache(parseLdCache(fs.readFileSync('/etc/ld.so.cache'))).lookup('libc.so.6', 62)!
    const soname = /\(SONAME\)\s+Library soname: \[(.+)\]/.exec(execFileSync('readelf', ['-dW', libc], { encoding: 'utf8' }))![1]
    expect(readElf(libc).soname).toBe(soname)
  })

  it.skipIf(!hasBusybox)('reads a static binary: no interpreter, no DT_NEEDED', () => {
    const info = readElf(BUSYBOX)
    expect(info.interpreter).toBeUndefined()
    expect(info.needed).toEqual([])
  })

  it('rejects a text file, truncated files and 32-bit ELF with a clear KtstrError', () => {
    const text = path.join(dir, 'script.sh')
    fs.writeFileSync(text, '#!/bin/sh\necho hi\n')
    expect(() => readElf(text)).toThrow(KtstrError)
    expect(() => readElf(text)).toThrow(/script\.sh is not an ELF file/)

    const head = fs.readFileSync(NODE).subarray(0, 300)
    const trunc = path.join(dir, 'node-head')
    fs.writeFileSync(trunc, head)
    expect(() => readElf(trunc)).toThrow(/node-head: truncated ELF file/)
    const tiny = path.join(dir, 'tiny')
    fs.writeFileSync(tiny, head.subarray(0, 20))
    expect(() => readElf(tiny)).toThrow(/tiny: truncated ELF file/)

    const e32 = Buffer.from(head.subarray(0, 100))
    e32[4] = 1 // ELFCLASS32
    const f32 = path.join(dir, 'elf32')
    fs.writeFileSync(f32, e32)
    expect(() => readElf(f32)).toThrow(/32-bit ELF/)
    expect(() => readElf(path.join(dir, 'missing'))).toThrow(/cannot open .*missing/)
  })
})

describe.skipIf(!hasCache)('ld.so.cache', () => {
  it('parses the glibc cache and finds libc like ldconfig -p', () => {
    const cache = LdCache.load()!
    const libc = cache.lookup('libc.so.6', 62)
    expect(libc).toBeDefined()
    expect(fs.existsSync(libc!)).toBe(true)
    if (!hasLdconfig) return
    const p = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' })
    expect(cache.entries.length).toBe(Number(/^(\d+) libs found/.exec(p)![1]))
    const fromLdconfig = /^\s+libc\.so\.6 \(libc6,x86-64[^)]*\) => (\S+)$/m.exec(p)![1]
    expect(libc).toBe(fromLdconfig)
  })

  it('rejects a file that is not a cache', () => {
    expect(() => parseLdCache(Buffer.from('not a cache at all, no magic here, long enough to parse'))).toThrow(/not a glibc ld\.so\.cache/)
  })
})

describe('libraryClosure', () => {
  it('contains node, its interpreter, libc, libstdc++ and libm', () => {
    const c = libraryClosure([NODE])
    expect(c[0]).toBe(NODE)
    const names = c.map((p) => path.basename(p))
    for (const lib of ['ld-linux-x86-64.so.2', 'libc.so.6', 'libstdc++.so.6', 'libm.so.6', 'libgcc_s.so.1']) expect(names).toContain(lib)
    for (const p of c) expect(fs.existsSync(p)).toBe(true)
    expect(new Set(c).size).toBe(c.length)
  })

  it.skipIf(!hasLdd)('resolves to the same files as ldd', () => {
    const ldd = execFileSync('ldd', [NODE], { encoding: 'utf8' })
    const fromLdd = [...ldd.matchAll(/(?:=> )?(\/\S+) \(0x/g)].map((m) => fs.realpathSync(m[1]!))
    const ours = new Set(
      libraryClosure([NODE])
        .slice(1)
        .map((p) => fs.realpathSync(p)),
    )
    expect(new Set(fromLdd)).toEqual(ours)
  })

  it.skipIf(!hasBusybox)('is just the binary for a static one', () => {
    expect(libraryClosure([BUSYBOX])).toEqual([BUSYBOX])
  })

  it('names the binary and the library when one is missing', () => {
    const bin = patched('/usr/bin/true', 'libc.so.6', 'libq.so.6', path.join(dir, 'true-q'))
    expect(() => libraryClosure([bin], { ldLibraryPath: '' })).toThrow(KtstrError)
    expect(() => libraryClosure([bin], { ldLibraryPath: '' })).toThrow(/true-q needs libq\.so\.6, which is not in/)
  })

  it('expands $ORIGIN in LD_LIBRARY_PATH', () => {
    fs.mkdirSync(path.join(dir, 'app/lib'), { recursive: true })
    const bin = patched('/usr/bin/true', 'libc.so.6', 'libq.so.6', path.join(dir, 'app/true-q'))
    fs.copyFileSync(hostLibc(), path.join(dir, 'app/lib/libq.so.6'))
    const c = libraryClosure([bin], { ldLibraryPath: '$ORIGIN/lib' })
    expect(c.filter((p) => path.basename(p) === 'libq.so.6')).toEqual([path.join(dir, 'app/lib/libq.so.6')])
  })

  it('searches LD_LIBRARY_PATH before ld.so.cache', () => {
    fs.mkdirSync(path.join(dir, 'override'), { recursive: true })
    fs.copyFileSync(hostLibc(), path.join(dir, 'override/libc.so.6'))
    expect(libraryClosure(['/usr/bin/true'], { ldLibraryPath: path.join(dir, 'override') })).toContain(path.join(dir, 'override/libc.so.6'))
    expect(libraryClosure(['/usr/bin/true'], { ldLibraryPath: '' })).not.toContain(path.join(dir, 'override/libc.so.6'))
  })
})
