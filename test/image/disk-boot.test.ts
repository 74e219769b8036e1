import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { composeDiskInitrd, mountPlan, virtioDiskName } from '../../src/image/disk-boot.js'
import { findMke2fs, writeExt4 } from '../../src/image/ext4.js'
import { runArchive } from '../../src/image/run-archive.js'
import { GuestTree } from '../../src/image/tree.js'
import { cpio, hasCpio, rawEntries, tmpDir } from './helpers.js'

const mke2fs = findMke2fs()
if (!mke2fs) console.warn('skipping the ext4 image tests: mke2fs missing (apt-get install e2fsprogs)')
const debugfs = mke2fs ? path.join(path.dirname(mke2fs), 'debugfs') : ''
const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p))

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

/** A host folder "pkg" (a file, a folder with two files, a symlink, a folder with a space) as a base tree. */
function fixture() {
  const root = fs.realpathSync(tmpDir('diskboot'))
  dirs.push(root)
  const pkg = path.join(root, 'pkg')
  fs.mkdirSync(path.join(pkg, 'sub'), { recursive: true })
  fs.mkdirSync(path.join(pkg, 'with space'))
  fs.writeFileSync(path.join(pkg, 'top.js'), 'top\n')
  fs.writeFileSync(path.join(pkg, 'sub', 'a.js'), 'a\n')
  fs.writeFileSync(path.join(pkg, 'sub', 'b.js'), 'b'.repeat(10000))
  fs.chmodSync(path.join(pkg, 'sub', 'b.js'), 0o755)
  fs.writeFileSync(path.join(pkg, 'with space', 'c.js'), 'c\n')
  fs.symlinkSync('top.js', path.join(pkg, 'link.js'))
  const base = new GuestTree()
  base.addDir(pkg)
  base.addData('/etc/passwd', 'root:x:0:0::/root:/bin/sh\n')
  base.addDev('/dev/console', 5, 1)
  base.addGuestDir('/tmp', 0o1777)
  const files = new Set(base.paths().filter((p) => ['file', 'data'].includes(base.get(p)!.kind)))
  return { root, pkg, base, files }
}

describe('virtioDiskName', () => {
  it('names disks as Linux does', () => {
    expect([0, 1, 25, 26, 27, 701, 702].map(virtioDiskName)).toEqual(['vda', 'vdb', 'vdz', 'vdaa', 'vdab', 'vdzz', 'vdaaa'])
  })
})

describe('mountPlan', () => {
  it('binds whole base folders the run leaves alone, and entry by entry inside one it writes into', () => {
    const { pkg, base, files } = fixture()
    fs.writeFileSync(path.join(pkg, 'sub', 'new.js'), 'new\n') // this run's own file, beside base files
    const run = runArchive({ data: [{ guestPath: '/ktstr/run/spec.json', content: '{}' }], hostPaths: [path.join(pkg, 'sub', 'new.js'), path.join(pkg, 'top.js')], omit: files })
    const { boot, binds } = mountPlan(base, run, files)
    // pkg/sub holds a file of the run: its base files are bound one by one, pkg's other entries too.
    expect(binds).toContain(path.join(pkg, 'sub', 'a.js'))
    expect(binds).toContain(path.join(pkg, 'sub', 'b.js'))
    expect(binds).toContain(path.join(pkg, 'with space'))
    expect(binds).toContain(path.join(pkg, 'top.js')) // in the base, so left out of the run archive
    expect(binds).not.toContain(path.join(pkg, 'sub'))
    expect(binds).not.toContain(path.join(pkg, 'sub', 'new.js'))
    // Mount points, symlinks and device nodes are in the initramfs; made-up files stay writable there.
    expect(boot.get(path.join(pkg, 'sub', 'a.js'))).toMatchObject({ kind: 'data' })
    expect(boot.get(path.join(pkg, 'link.js'))).toEqual({ kind: 'symlink', target: 'top.js' })
    expect(boot.get('/dev/console')).toMatchObject({ kind: 'chardev', major: 5, minor: 1 })
    expect(boot.get('/etc/passwd')).toMatchObject({ kind: 'data' })
    expect(binds).not.toContain('/etc/passwd')
    expect(boot.get('/tmp')).toEqual({ kind: 'dir', mode: 0o1777 })
    expect(binds.filter((b) => b === '/tmp' || b.startsWith('/etc'))).toEqual([])
  })

  it('binds the top folder of a base tree the run does not touch', () => {
    const { pkg, base, files } = fixture()
    const run = runArchive({ data: [{ guestPath: '/ktstr/run/spec.json', content: '{}' }], hostPaths: [], omit: files })
    // pkg's folder lies in /tmp, which stays writable: the folder under it is bound, not /tmp.
    const under = pkg.split('/').slice(0, 3).join('/')
    expect(pkg.startsWith('/tmp/')).toBe(true)
    expect(mountPlan(base, run, files).binds).toEqual([under])
  })
})

describe('mountPlan writable', () => {
  it("makes the run's working folder in the initramfs and binds its base entries read-only", () => {
    const { pkg, base, files } = fixture()
    const run = runArchive({ data: [{ guestPath: '/ktstr/run/spec.json', content: '{}' }], hostPaths: [], omit: files })
    const { boot, binds } = mountPlan(base, run, files, [pkg])
    expect(boot.get(pkg)).toMatchObject({ kind: 'dir' })
    expect(binds).not.toContain(pkg)
    expect(binds).toEqual(expect.arrayContaining([path.join(pkg, 'sub'), path.join(pkg, 'top.js'), path.join(pkg, 'with space')]))
  })
})

describe.skipIf(!mke2fs)('writeExt4', () => {
  it('writes the tree as an ext4 image: contents, modes and symlinks', async () => {
    const { root, pkg, base } = fixture()
    const img = path.join(root, 'base.ext4')
    await writeExt4(base, mke2fs!, img)
    const fsck = spawnSync(path.join(path.dirname(mke2fs!), 'e2fsck'), ['-fn', img], { encoding: 'utf8' })
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0)
    const dbg = (cmd: string) => spawnSync(debugfs, ['-R', cmd, img], { encoding: 'utf8' }).stdout
    expect(dbg(`cat "${path.join(pkg, 'sub', 'b.js')}"`)).toBe('b'.repeat(10000))
    expect(dbg(`cat "${path.join(pkg, 'with space', 'c.js')}"`)).toBe('c\n')
    expect(dbg('cat /etc/passwd')).toBe('root:x:0:0::/root:/bin/sh\n')
    expect(dbg(`stat "${path.join(pkg, 'sub', 'b.js')}"`)).toMatch(/Mode:\s+0?755/)
    expect(dbg(`stat "${path.join(pkg, 'link.js')}"`)).toMatch(/Fast link dest: "top.js"/)
    expect(dbg('stat /tmp')).toMatch(/Mode:\s+01777/)
    expect(fs.readdirSync(root)).toEqual(['base.ext4', 'pkg']) // the staging folder is gone
  })
})

describe.skipIf(!hasCpio || !BUSYBOX)('composeDiskInitrd', () => {
  it('writes the mount table, the boot script and the run archive', async () => {
    const { root, pkg, base, files } = fixture()
    fs.writeFileSync(path.join(pkg, 'with space', 'mine.js'), 'mine\n')
    const run = runArchive({ data: [{ guestPath: '/ktstr/run/spec.json', content: '{"x":1}' }], hostPaths: [path.join(pkg, 'with space', 'mine.js')], omit: files })
    const out = path.join(root, 'initrd.cpio')
    await composeDiskInitrd({ tree: base, files }, run, { device: 'vdc', busybox: BUSYBOX!, node: "/opt/no'de" }, out)
    const x = path.join(root, 'x')
    fs.mkdirSync(x)
    // Two archives back to back (boot, then run), as the kernel unpacks them; cpio reads one at a time.
    const buf = fs.readFileSync(out)
    const { end } = rawEntries(buf)
    for (const part of [buf.subarray(0, end), buf.subarray(end)]) {
      const r = cpio(['-idm', '--quiet', '--no-absolute-filenames'], part, x)
      expect(r.status, r.err).toBe(0)
    }
    const fstab = fs.readFileSync(path.join(x, 'ktstr/boot/fstab'), 'utf8').split('\n')
    expect(fstab).toContain('/dev/vdc /ktstr/base ext4 ro 0 0')
    expect(fs.readFileSync(path.join(x, 'ktstr/node'), 'utf8')).toContain('echo 4096 > /sys/block/vdc/queue/read_ahead_kb')
    const esc = (p: string) => p.replace(/ /g, '\\040')
    expect(fstab).toContain(`${esc(`/ktstr/base${pkg}/with space/c.js`)} ${esc(`${pkg}/with space/c.js`)} none bind 0 0`)
    expect(fs.readFileSync(path.join(x, 'ktstr/node'), 'utf8')).toContain(`exec -a /ktstr/node '/opt/no'\\''de' "$@"`)
    expect(fs.readFileSync(path.join(x, 'ktstr/run/spec.json'), 'utf8')).toBe('{"x":1}')
    expect(fs.readFileSync(path.join(x, pkg, 'with space', 'mine.js'), 'utf8')).toBe('mine\n')
    expect(fs.statSync(path.join(x, 'ktstr/boot/busybox')).size).toBe(fs.statSync(BUSYBOX!).size)
  })
})
