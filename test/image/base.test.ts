import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BaseImage, baseImage } from '../../src/image/base.js'
import { composeInitrd } from '../../src/image/initrd.js'
import { runArchive } from '../../src/image/run-archive.js'
import { strippedCopy } from '../../src/image/stripped.js'
import { packageRoot } from '../../src/util/paths.js'
import { testKernel } from '../helpers/repo.js'
import { hasCpio, isRoot, listNames, listVerbose, rawEntries, standInPackage, tmpDir } from './helpers.js'

const hasBusybox = fs.existsSync('/bin/busybox')
const hasStrip = spawnSync('strip', ['--version']).status === 0
const CHROOT = spawnSync('sh', ['-c', 'command -v chroot'], { encoding: 'utf8' }).stdout.trim()
const hasChroot = isRoot && CHROOT !== ''
const SCHED = path.join(testKernel ?? '', 'scx', 'scx_simple')
const hasSched = fs.existsSync(SCHED)
const realBuilt = fs.existsSync(path.join(packageRoot(), 'dist/runtime'))
if (!hasBusybox) console.warn('skipping base image tests: /bin/busybox missing (apt-get install busybox-static)')
if (!hasCpio) console.warn('skipping base image tests: GNU cpio is not installed (apt-get install cpio)')
if (!hasChroot) console.warn('skipping the chroot smoke test: needs root and chroot')
if (!hasSched) console.warn(`skipping run-archive tests: ${SCHED} missing`)
if (!realBuilt) console.warn(`skipping the real-package base image test: ${packageRoot()}/dist/runtime missing (run npm run build)`)

const NODE = fs.realpathSync(process.execPath)
const rel = (p: string) => p.replace(/^\/+/, '')
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe.skipIf(!hasBusybox || !hasCpio)('baseImage', () => {
  let xdg: string
  let pkg: string
  let savedXdg: string | undefined
  let cold: BaseImage
  let warm: BaseImage

  beforeAll(async () => {
    savedXdg = process.env.XDG_CACHE_HOME
    xdg = tmpDir('xdg')
    process.env.XDG_CACHE_HOME = xdg
    pkg = standInPackage()

    cold = await baseImage({ packageRoot: pkg })
    warm = await baseImage({ packageRoot: pkg })
    console.log(
      `base image: ${(cold.bytes / 1e6).toFixed(1)} MB; cold build ${cold.ms.toFixed(0)} ms (strip ${hasStrip ? 'on' : 'off'}), warm (cache hit) ${warm.ms.toFixed(0)} ms`,
    )
  }, 120_000)

  afterAll(() => {
    if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME
    else process.env.XDG_CACHE_HOME = savedXdg
    fs.rmSync(xdg, { recursive: true, force: true })
    fs.rmSync(pkg, { recursive: true, force: true })
  })

  it('builds once, then reuses the cached archive for the same inputs', () => {
    expect(cold.built).toBe(true)
    expect(warm.built).toBe(false)
    expect(warm.key).toBe(cold.key)
    expect(warm.path).toBe(cold.path)
    expect(cold.path).toBe(path.join(xdg, 'ktstr/images', `base-${cold.key}.cpio`))
    expect(fs.statSync(cold.path).size).toBe(cold.bytes)
    expect(fs.readdirSync(path.dirname(cold.path)).filter((n) => n.includes('.tmp-'))).toEqual([])
  })

  it('contains node and its libraries at host paths, busybox, devices, dirs and the package', () => {
    const v = listVerbose(cold.path)
    expect(v.get(rel(NODE))).toMatch(/^-rwx/)
    expect(v.get('lib64')).toMatch(/lib64 -> usr\/lib64$/)
    expect(v.get('bin')).toMatch(/bin -> usr\/bin$/)
    expect(v.get('usr/lib/x86_64-linux-gnu/libc.so.6')).toMatch(/^-/)
    expect(v.get('usr/lib/x86_64-linux-gnu/libstdc++.so.6')).toMatch(/-> libstdc\+\+\.so\.6\.0\.\d+$/)
    expect(v.get('ktstr/bin/busybox')).toMatch(/^-rwxr-xr-x/) // the binary, not a (self-)link
    expect(v.get('ktstr/bin/ls')).toMatch(/ktstr\/bin\/ls -> busybox$/)
    expect(v.get('usr/bin/sh') ?? v.get('bin/sh')).toMatch(/sh -> \/ktstr\/bin\/busybox$/)
    expect(v.get('dev/console')).toMatch(/^crw------- .*5,\s+1 /)
    expect(v.get('dev/null')).toMatch(/^crw-rw-rw- .*1,\s+3 /)
    expect(v.get('tmp')).toMatch(/^drwxrwxrwt/)
    for (const d of ['proc', 'sys', 'dev', 'run', 'mnt', 'etc']) expect(v.get(d), d).toMatch(/^d/)
    expect(v.get('etc/passwd')).toMatch(/^-rw-r--r--/)
    expect(v.get(rel(`${pkg}/package.json`))).toBeDefined()
    expect(v.get(rel(`${pkg}/dist/runtime/probe.js`))).toBeDefined()
    expect(v.get(rel(`${pkg}/dist/native-shims/libc.js`))).toBeDefined()
    expect(v.get(rel(`${pkg}/dist/runtime/probe.js.map`))).toBeUndefined()
    expect(v.get(rel(`${pkg}/dist/runtime/probe.d.ts`))).toBeUndefined()
    expect(v.get(rel(`${pkg}/node_modules`))).toMatch(/-> \/.*node_modules$/)
    const koffi = fs.realpathSync(path.join(pkg, 'node_modules/koffi'))
    expect(v.get(rel(`${koffi}/package.json`))).toBeDefined()
    expect(v.get(rel(`${koffi}/src/koffi/index.js`))).toBeDefined()
    expect([...v.keys()].some((n) => n.endsWith('linux_x64/koffi.node'))).toBe(true)
    expect([...v.keys()].some((n) => n.includes('musl_x64') || n.endsWith('.cc'))).toBe(false)
    expect(cold.files.has(NODE)).toBe(true)
  })

  it.skipIf(!hasStrip)("uses a stripped copy of node at node's host path", () => {
    const line = listVerbose(cold.path).get(rel(NODE))!
    const size = Number(/^\S+\s+\d+\s+\S+\s+\S+\s+(\d+)/.exec(line)![1])
    expect(size).toBeGreaterThan(10e6)
    expect(size).toBeLessThan(fs.statSync(NODE).size)
  })

  it.skipIf(!hasChroot)(
    'runs node with koffi and busybox sh from the extracted archive (chroot)',
    () => {
      const root = tmpDir('chroot')
      try {
        const x = spawnSync('cpio', ['-id', '--quiet'], { input: fs.readFileSync(cold.path), cwd: root })
        expect(x.status, x.stderr?.toString()).toBe(0)
        const env = { PATH: '/ktstr/bin' }
        const n = spawnSync(CHROOT, [root, NODE, `${pkg}/dist/runtime/probe.js`], { encoding: 'utf8', env })
        expect(n.stdout, n.stderr).toMatch(/^probe ok pid=\d+ node=v\d+/)
        const s = spawnSync(CHROOT, [root, '/bin/sh', '-c', 'echo $((6*7)); ls /ktstr/bin/busybox'], { encoding: 'utf8', env })
        expect(s.stdout, s.stderr).toBe('42\n/ktstr/bin/busybox\n')
      } finally {
        fs.rmSync(root, { recursive: true, force: true })
      }
    },
    60_000,
  )

  it('rebuilds when an input changes and keeps only the newest 3 archives', async () => {
    const dir = path.dirname(cold.path)
    const old = new Date(Date.now() - 86400_000)
    for (let i = 0; i < 4; i++) {
      const p = path.join(dir, `base-00000000000000${i}0.cpio`)
      fs.writeFileSync(p, '')
      fs.utimesSync(p, old, old)
    }
    const extra = path.join(pkg, 'extra.txt')
    fs.writeFileSync(extra, 'v1')
    const a = await baseImage({ packageRoot: pkg, extraPaths: [extra] })
    expect(a.built).toBe(true)
    expect(a.key).not.toBe(cold.key)
    expect(listNames(a.path)).toContain(rel(extra))
    const later = new Date(Date.now() + 5000)
    fs.utimesSync(extra, later, later) // same content, new mtime: the key is (path, size, mtime)
    const b = await baseImage({ packageRoot: pkg, extraPaths: [extra] })
    expect(b.built).toBe(true)
    expect(b.key).not.toBe(a.key)
    const left = fs
      .readdirSync(dir)
      .filter((n) => /^base-.*\.cpio$/.test(n))
      .sort()
    expect(left).toEqual([a.path, b.path, cold.path].map((p) => path.basename(p)).sort())
  }, 120_000)

  describe.skipIf(!hasSched)('runArchive + composeInitrd', () => {
    let run: Buffer
    beforeAll(async () => {
      const tree = runArchive({
        data: [{ guestPath: '/ktstr/run/spec.json', content: JSON.stringify({ scheduler: 'scx_simple' }) }],
        hostPaths: [SCHED],
        omit: cold.files,
      })
      const file = path.join(xdg, 'run.cpio')
      await tree.writeCpio(file, { firstInode: 0x40000000 })
      run = fs.readFileSync(file)
    })

    it('holds the spec, the scheduler at its host path and the libraries the base lacks', () => {
      const names = listNames(run)
      expect(names).toContain('ktstr/run/spec.json')
      expect(names).toContain(rel(SCHED))
      expect(names.some((n) => /libelf\.so/.test(n))).toBe(true)
      expect(names).toContain('lib64') // symlinks are repeated, so /lib64 stays a symlink when unpacked over the base
      expect(names).not.toContain('usr/lib/x86_64-linux-gnu/libc.so.6') // already in the base
      const { entries, end } = rawEntries(run)
      expect(end).toBe(run.length)
      expect(entries.slice(0, -1).every((e) => e.ino >= 0x40000000)).toBe(true)
    })

    it.skipIf(!hasStrip)("takes the scheduler's stripped copy at the scheduler's host path, with its libraries", async () => {
      const images = path.join(xdg, 'images')
      const copy = await strippedCopy('scheduler', SCHED, images)
      expect(copy).toBeDefined()
      expect(fs.statSync(copy!).size).toBeLessThan(fs.statSync(SCHED).size * 0.8)
      expect(await strippedCopy('scheduler', SCHED, images)).toBe(copy) // cached
      const file = path.join(xdg, 'run-stripped.cpio')
      await runArchive({ data: [], hostPaths: [{ path: SCHED, source: copy! }], omit: cold.files }).writeCpio(file)
      const archive = fs.readFileSync(file)
      const entry = rawEntries(archive).entries.find((e) => e.name === rel(SCHED))!
      expect(archive.subarray(entry.dataOffset, entry.dataOffset + entry.size).equals(fs.readFileSync(copy!))).toBe(true)
      expect(entry.mode & 0o111).not.toBe(0)
      expect(listNames(archive).some((n) => /libelf\.so/.test(n))).toBe(true)
    })

    it('appends the run archive to a copy of the base', async () => {
      const out = path.join(xdg, 'initrd.img')
      const t = await composeInitrd(
        cold,
        runArchive({
          data: [{ guestPath: '/ktstr/run/spec.json', content: JSON.stringify({ scheduler: 'scx_simple' }) }],
          hostPaths: [SCHED],
          omit: cold.files,
        }),
        out,
      )
      console.log(`composeInitrd: copy ${t.copyMs.toFixed(1)} ms, append ${t.appendMs.toFixed(1)} ms, ${(t.bytes / 1e6).toFixed(1)} MB`)
      const img = fs.readFileSync(out)
      expect(img.length).toBe(cold.bytes + run.length)
      expect(t.bytes).toBe(img.length)
      expect(sha(img.subarray(0, cold.bytes))).toBe(sha(fs.readFileSync(cold.path)))
      expect(img.subarray(cold.bytes).equals(run)).toBe(true)
      // GNU cpio stops at the first TRAILER!!!, so it sees only the base part of the whole file ...
      const whole = listNames(img)
      expect(whole).toContain(rel(NODE))
      expect(whole).not.toContain('ktstr/run/spec.json')
      // ... and the second archive, read from the base's end, lists on its own.
      expect(listNames(img.subarray(cold.bytes))).toContain('ktstr/run/spec.json')
      // Walking both headers chains back to back reaches the end of the file exactly.
      const first = rawEntries(img)
      expect(first.end).toBe(cold.bytes)
      expect(rawEntries(img, first.end).end).toBe(img.length)
    })
  })

  it.skipIf(!realBuilt)(
    'builds from the real ktstr package',
    async () => {
      const r = await baseImage()
      const names = listNames(r.path)
      expect(names).toContain(rel(path.join(packageRoot(), 'package.json')))
      expect(names.some((n) => n.startsWith(rel(path.join(packageRoot(), 'dist/runtime/'))))).toBe(true)
    },
    120_000,
  )

  it('builds once when called concurrently in one process', async () => {
    const extra = path.join(pkg, 'extra-concurrent.txt')
    fs.writeFileSync(extra, 'x')
    const [a, b] = await Promise.all([baseImage({ packageRoot: pkg, extraPaths: [extra] }), baseImage({ packageRoot: pkg, extraPaths: [extra] })])
    expect([a.built, b.built].sort()).toEqual([false, true])
    expect(a.path).toBe(b.path)
    expect(fs.statSync(a.path).size).toBe(a.bytes)
  }, 120_000)
})
