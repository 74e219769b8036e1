/**
 * The base image cache under concurrent processes, crashes and corruption: entries are checked
 * against their manifest, built once across processes, and never pruned while in use.
 */

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { type BaseImage, baseImage } from '../../src/image/base.js'
import { lockPath, manifestPath, partPath, pruneCached, readValid } from '../../src/image/cache-entry.js'
import { FileLock } from '../../src/util/file-lock.js'
import { repoRoot } from '../helpers/repo.js'
import { hasCpio, listNames, standInPackage, tmpDir } from './helpers.js'

const BASE_JS = path.join(repoRoot, 'dist', 'src', 'image', 'base.js')
const distBuilt = fs.existsSync(BASE_JS)
const hasBusybox = fs.existsSync('/bin/busybox')
if (!distBuilt) console.warn(`skipping the two-process cache test: ${BASE_JS} missing (run npm run build)`)

// A child process that waits for the file GO, then asks for the base image and prints the result.
const CHILD = `
import fs from 'node:fs'
const { baseImage } = await import(process.env.BASE_JS)
while (!fs.existsSync(process.env.GO)) await new Promise((r) => setTimeout(r, 5))
const r = await baseImage({ packageRoot: process.env.PKG, extraPaths: [process.env.EXTRA] })
console.log(JSON.stringify({ built: r.built, path: r.path, bytes: r.bytes }))
`

interface Child {
  code: number | null
  stdout: string
  stderr: string
}

/** The child's result, and its stderr so far while it runs. */
function child(env: NodeJS.ProcessEnv): { done: Promise<Child>; stderr: () => string } {
  let stdout = ''
  let stderr = ''
  const c = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  c.stdout.on('data', (b) => (stdout += b))
  c.stderr.on('data', (b) => (stderr += b))
  const done = new Promise<Child>((resolve) => c.on('close', (code) => resolve({ code, stdout, stderr })))
  return { done, stderr: () => stderr }
}

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 5))
}

describe.skipIf(!hasBusybox || !hasCpio)('base image cache', () => {
  let xdg: string
  let pkg: string
  let savedXdg: string | undefined
  let extra: string
  const base = () => baseImage({ packageRoot: pkg, extraPaths: [extra] })

  beforeAll(() => {
    savedXdg = process.env.XDG_CACHE_HOME
    xdg = tmpDir('cache-xdg')
    process.env.XDG_CACHE_HOME = xdg
    pkg = standInPackage()
    extra = path.join(pkg, 'extra.txt')
    fs.writeFileSync(extra, 'one')
  })

  afterAll(() => {
    if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME
    else process.env.XDG_CACHE_HOME = savedXdg
    fs.rmSync(xdg, { recursive: true, force: true })
    fs.rmSync(pkg, { recursive: true, force: true })
  })

  it.skipIf(!distBuilt)('two processes asking at once: both succeed, one builds, the other waits and reuses it', { timeout: 120_000 }, async () => {
    // The entry's name, from a build in another cache (the key depends on the inputs only).
    const elsewhere = tmpDir('cache-key')
    let file: string
    try {
      process.env.XDG_CACHE_HOME = elsewhere
      file = path.join(xdg, 'ktstr', 'images', path.basename((await base()).path))
    } finally {
      process.env.XDG_CACHE_HOME = xdg
      fs.rmSync(elsewhere, { recursive: true, force: true })
    }
    // Holding the entry's lock while both start makes them meet: each must wait for it.
    fs.mkdirSync(path.dirname(file), { recursive: true })
    const gate = FileLock.tryAcquire(lockPath(file), 'exclusive')!
    const go = path.join(xdg, 'go')
    const env = { BASE_JS, GO: go, PKG: pkg, EXTRA: extra, XDG_CACHE_HOME: xdg, KTSTR_LOG: 'debug' }
    const children = [child(env), child(env)]
    fs.writeFileSync(go, '')
    const waiting = /is being made by pid \d+; waiting for it/
    await until(() => children.every((c) => waiting.test(c.stderr())))
    gate.release()
    const [a, b] = await Promise.all(children.map((c) => c.done))
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    const ra = JSON.parse(a.stdout)
    const rb = JSON.parse(b.stdout)
    expect([ra.built, rb.built].sort()).toEqual([false, true])
    expect(ra.path).toBe(file)
    expect(rb.path).toBe(file)
    expect(ra.bytes).toBe(rb.bytes)
    expect(readValid(file)?.bytes).toBe(fs.statSync(file).size)
    expect(listNames(file)).toContain(extra.slice(1))
    expect(fs.readdirSync(path.dirname(file)).filter((n) => n.includes('.tmp-'))).toEqual([])
  })

  it.skipIf(!distBuilt)('a build killed midway leaves no entry, and the next build removes its temporary file', { timeout: 120_000 }, async () => {
    const cold = tmpDir('cache-kill')
    try {
      const go = path.join(cold, 'go')
      fs.writeFileSync(go, '')
      const c = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
        env: { ...process.env, BASE_JS, GO: go, PKG: pkg, EXTRA: extra, XDG_CACHE_HOME: cold },
        stdio: 'ignore',
      })
      const closed = new Promise((r) => c.on('close', r))
      const images = path.join(cold, 'ktstr', 'images')
      const temps = () => (fs.existsSync(images) ? fs.readdirSync(images).filter((n) => n.includes('.tmp-')) : [])
      await until(() => temps().length > 0)
      c.kill('SIGKILL')
      await closed
      expect(temps()).not.toEqual([])
      expect(fs.readdirSync(images).filter((n) => n.endsWith('.cpio.ok'))).toEqual([])
      process.env.XDG_CACHE_HOME = cold
      const b = await base()
      expect(b.built).toBe(true)
      expect(readValid(b.path)).toBeDefined()
      expect(temps()).toEqual([])
    } finally {
      process.env.XDG_CACHE_HOME = xdg
      fs.rmSync(cold, { recursive: true, force: true })
    }
  })

  describe('a bad entry is detected and built again', () => {
    let good: BaseImage
    beforeAll(async () => {
      good = await base()
    }, 120_000)

    it('truncated', { timeout: 120_000 }, async () => {
      fs.truncateSync(good.path, Math.floor(good.bytes / 2))
      const again = await base()
      expect(again.built).toBe(true)
      expect(again.path).toBe(good.path)
      expect(fs.statSync(again.path).size).toBe(good.bytes)
      expect(readValid(again.path)).toBeDefined()
    })

    it('zeroed in the middle (same size)', { timeout: 120_000 }, async () => {
      const fd = fs.openSync(good.path, 'r+')
      fs.writeSync(fd, Buffer.alloc(8 << 20), 0, 8 << 20, Math.floor(good.bytes / 2))
      fs.closeSync(fd)
      expect(fs.statSync(good.path).size).toBe(good.bytes)
      const again = await base()
      expect(again.built).toBe(true)
      expect(listNames(again.path)).toContain(extra.slice(1))
    })

    it('without its manifest (a crash between the two renames)', { timeout: 120_000 }, async () => {
      fs.rmSync(manifestPath(good.path))
      const again = await base()
      expect(again.built).toBe(true)
      expect(readValid(again.path)).toBeDefined()
      const warm = await base()
      expect(warm.built).toBe(false)
    })

    it('copyTo builds it again when it went missing after baseImage returned', { timeout: 120_000 }, async () => {
      const b = await base()
      fs.rmSync(b.path)
      const dest = path.join(xdg, 'copy.cpio')
      await b.copyTo(dest)
      expect(fs.statSync(dest).size).toBe(b.bytes)
      expect(readValid(b.path)).toBeDefined()
    })
  })

  it('prune keeps an entry whose lock is held (a copy or build in progress) and removes it once free', { timeout: 120_000 }, async () => {
    const b = await base()
    const dir = path.dirname(b.path)
    // Make it the least recently used of four, so prune (keep 1) picks it.
    const old = new Date(Date.now() - 86400_000)
    fs.utimesSync(manifestPath(b.path), old, old)
    const others = ['1', '2', '3'].map((i) => {
      const p = path.join(dir, `base-${i.repeat(16)}.cpio`)
      fs.writeFileSync(p, 'x')
      return p
    })
    const held = FileLock.tryAcquire(lockPath(b.path), 'shared')!
    try {
      pruneCached(dir, /^base-[0-9a-f]+\.cpio$/, 1, others[2]!)
      expect(fs.existsSync(b.path)).toBe(true)
      expect(readValid(b.path)).toBeDefined()
    } finally {
      held.release()
    }
    pruneCached(dir, /^base-[0-9a-f]+\.cpio$/, 1, others[2]!)
    expect(fs.existsSync(b.path)).toBe(false)
    expect(fs.existsSync(manifestPath(b.path))).toBe(false)
    expect(fs.existsSync(lockPath(b.path))).toBe(false)
  })
})

describe('pruneCached with a size cap', () => {
  it('keeps the most recently used entries whose disk use (parts included) fits in maxBytes, never the current one, nor a held one', () => {
    const dir = tmpDir('prune')
    onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
    const KiB = 1024
    const entry = (name: string, kib: number, ageS: number, partKib = 0) => {
      const p = path.join(dir, name)
      fs.writeFileSync(p, Buffer.alloc(kib * KiB, 1))
      if (partKib) fs.writeFileSync(partPath(p, 'ram0'), Buffer.alloc(partKib * KiB, 1))
      fs.writeFileSync(manifestPath(p), '{}')
      const t = new Date(Date.now() - ageS * 1000)
      fs.utimesSync(manifestPath(p), t, t)
      return p
    }
    const newest = entry('snapshot-aa.qemu', 8, 1, 32) // 40 KiB with its part
    const middle = entry('snapshot-bb.qemu', 40, 2)
    const held = entry('snapshot-cc.qemu', 8, 3, 32)
    const oldest = entry('snapshot-dd.qemu', 8, 4, 32)
    const current = entry('snapshot-ee.qemu', 200, 5) // the one just used: kept whatever its age
    const orphan = partPath(path.join(dir, 'snapshot-ff.qemu'), 'ram0') // its entry is gone
    fs.writeFileSync(orphan, 'x')
    const lock = FileLock.tryAcquire(lockPath(held), 'shared')!
    try {
      pruneCached(dir, /^snapshot-[0-9a-f]+\.qemu$/, { maxBytes: 100 * KiB }, current)
    } finally {
      lock.release()
    }
    const left = () =>
      fs
        .readdirSync(dir)
        .filter((n) => !n.endsWith('.lock'))
        .sort()
    expect(left()).toEqual([
      'snapshot-aa.qemu',
      'snapshot-aa.qemu.ok',
      'snapshot-aa.qemu.part-ram0',
      'snapshot-bb.qemu',
      'snapshot-bb.qemu.ok',
      'snapshot-cc.qemu',
      'snapshot-cc.qemu.ok',
      'snapshot-cc.qemu.part-ram0',
      'snapshot-ee.qemu',
      'snapshot-ee.qemu.ok',
    ])
    pruneCached(dir, /^snapshot-[0-9a-f]+\.qemu$/, { maxBytes: 100 * KiB }, current)
    expect([newest, middle, held, oldest, current].map((p) => fs.existsSync(p))).toEqual([true, true, false, false, true])
    expect(fs.existsSync(partPath(held, 'ram0'))).toBe(false)
  })
})
