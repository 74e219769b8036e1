// Disk image locks against a real QEMU (7.2 here) holding the same image, stopped before its
// first instruction (-S, TCG): the host's pre-launch check (checkDisk) and the kvm backend's
// disks (attachDisks, which opens and locks each image for the VM's life) refuse what QEMU would,
// with one line; and QEMU refuses an image our VMM holds. rw/rw and ro/rw conflict, ro/ro coexist.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { F_OFD_SETLK, F_WRLCK, O_CLOEXEC, O_RDWR } from '../../native-shims/constants.js'
import * as libc from '../../native-shims/libc.js'
import { checkDisk, type DiskSpec } from '../../src/vm/disk.js'
import { Bus } from '../../src/vm/kvm/io-bus.js'
import { attachDisks, type DiskEventfds } from '../../src/vm/kvm/virtio/block/disks.js'
import { diskArgs } from '../../src/vm/qemu/args.js'
import { guestRam } from './kvm/blk/setup.js'

const QEMU = 'qemu-system-x86_64'
const noQemu = spawnSync(QEMU, ['--version']).status === 0 ? undefined : `${QEMU} is not installed`
if (noQemu) console.warn(`[ktstr tests] skipping the disk lock tests: ${noQemu}`)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-lock-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let n = 0
function image(): string {
  const p = path.join(dir, `disk-${n++}.img`)
  fs.writeFileSync(p, Buffer.alloc(1 << 20))
  return p
}

/** Byte ranges locked on the file, from /proc/locks ("OFDLCK ADVISORY READ -1 dev:inode start end"). */
function lockedBytes(file: string): string[] {
  const ino = fs.statSync(file).ino
  return fs
    .readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`:${ino} `))
    .map((l) => l.trim().split(/\s+/).slice(-2).join('-'))
    .sort()
}

const qemus: ChildProcess[] = []
afterAll(() => qemus.forEach((q) => q.kill('SIGKILL')))

/** A QEMU with the disk attached exactly as the qemu backend attaches it; resolves once it holds its locks. */
async function qemuHolding(d: DiskSpec): Promise<ChildProcess> {
  const q = spawn(QEMU, ['-accel', 'tcg', '-S', '-display', 'none', '-nodefaults', '-monitor', 'none', '-serial', 'none', ...diskArgs(d, 0)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  qemus.push(q)
  let stderr = ''
  q.stderr!.on('data', (b) => (stderr += b))
  const end = Date.now() + 20_000
  // /proc/locks merges adjacent ranges of one holder: 100-101 is "consistent read" and "write".
  const expected = d.readOnly ? ['100-100', '201-201'] : ['100-101', '201-201']
  while (!expected.every((r) => lockedBytes(d.path).includes(r))) {
    if (q.exitCode !== null || Date.now() > end) throw new Error(`QEMU did not lock ${d.path}: ${stderr}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return q
}

/** QEMU's own answer for the disk: its exit code and first stderr line. */
function qemuRefusal(d: DiskSpec): { status: number | null; line: string } {
  const r = spawnSync(QEMU, ['-accel', 'tcg', '-S', '-display', 'none', '-nodefaults', '-monitor', 'none', '-serial', 'none', ...diskArgs(d, 0)], {
    encoding: 'utf8',
    timeout: 10_000,
  })
  return { status: r.status, line: r.stderr.split('\n')[0] ?? '' }
}

const noEventfds: DiskEventfds = { addIoeventfd: () => {}, addIrqfd: () => {} }
const ourVmm = (specs: DiskSpec[]) => attachDisks(specs, { vm: noEventfds, ram: guestRam().ram, mmio: new Bus('mmio') })

const rwMessage = (p: string) => `disk ${p} is in use by another guest (locked read-write); stop that guest first or give this one a copy of the image`
const roMessage = (p: string) => `disk ${p} is in use by another guest (locked read-only); stop that guest first or attach the disk read-only here too (${p},ro)`

describe.skipIf(noQemu)('disk image locks, against a real QEMU', () => {
  it('QEMU locks as measured: bytes 100 and 201 read-only, 100-101 and 201 read-write', async () => {
    const ro = image()
    const rw = image()
    const a = await qemuHolding({ path: ro, readOnly: true })
    const b = await qemuHolding({ path: rw, readOnly: false })
    expect(lockedBytes(ro)).toEqual(['100-100', '201-201'])
    expect(lockedBytes(rw)).toEqual(['100-101', '201-201'])
    a.kill('SIGKILL')
    b.kill('SIGKILL')
  })

  it('QEMU holds it read-write: our check and our VMM refuse it both ways, with one line', async () => {
    const p = image()
    const q = await qemuHolding({ path: p, readOnly: false })
    expect(() => checkDisk({ path: p, readOnly: false })).toThrow(rwMessage(p))
    expect(() => checkDisk({ path: p, readOnly: true })).toThrow(rwMessage(p))
    expect(() => ourVmm([{ path: p, readOnly: false }])).toThrow(rwMessage(p))
    expect(() => ourVmm([{ path: p, readOnly: true }])).toThrow(rwMessage(p))
    expect(lockedBytes(p)).toEqual(['100-101', '201-201']) // ours were dropped again
    q.kill('SIGKILL')
    await new Promise((r) => q.once('exit', r))
    expect(() => checkDisk({ path: p, readOnly: false })).not.toThrow()
  })

  it('QEMU holds it read-only: read-only guests coexist, a writer is refused', async () => {
    const p = image()
    const q = await qemuHolding({ path: p, readOnly: true })
    expect(() => checkDisk({ path: p, readOnly: true })).not.toThrow()
    const disks = ourVmm([{ path: p, readOnly: true }])
    try {
      expect(lockedBytes(p)).toEqual(['100-100', '100-100', '201-201', '201-201'])
      expect(() => checkDisk({ path: p, readOnly: false })).toThrow(roMessage(p))
      expect(() => ourVmm([{ path: p, readOnly: false }])).toThrow(roMessage(p))
    } finally {
      await disks.close()
    }
    q.kill('SIGKILL')
  })

  it('our VMM holds it: QEMU refuses it too, and after close() it is free', async () => {
    const p = image()
    const disks = ourVmm([{ path: p, readOnly: false }])
    expect(lockedBytes(p)).toEqual(['100-101', '201-201'])
    const refused = qemuRefusal({ path: p, readOnly: true })
    expect(refused.status).toBe(1)
    expect(refused.line).toMatch(/Failed to get shared "write" lock/)
    expect(() => checkDisk({ path: p, readOnly: true })).toThrow(rwMessage(p))
    await disks.close()
    expect(lockedBytes(p)).toEqual([])
    expect(() => checkDisk({ path: p, readOnly: false })).not.toThrow()
  })

  it('two of our read-only guests coexist; a second writer does not', async () => {
    const p = image()
    const a = ourVmm([{ path: p, readOnly: true }])
    const b = ourVmm([{ path: p, readOnly: true }])
    expect(() => ourVmm([{ path: p, readOnly: false }])).toThrow(roMessage(p))
    await a.close()
    await b.close()
    const w = ourVmm([{ path: p, readOnly: false }])
    expect(() => ourVmm([{ path: p, readOnly: false }])).toThrow(rwMessage(p))
    await w.close()
  })
})

describe('disk image locks, against another program', () => {
  it('a whole-file write lock (not QEMU-style) refuses our VMM with one line', async () => {
    const p = image()
    const fd = libc.open(p, O_RDWR | O_CLOEXEC)
    try {
      libc.fcntlLock(fd, F_OFD_SETLK, { type: F_WRLCK, start: 0, len: 0 })
      expect(() => ourVmm([{ path: p, readOnly: true }])).toThrow(`disk ${p} is locked by another program; stop it first or give this guest a copy of the image`)
    } finally {
      libc.close(fd)
    }
    const disks = ourVmm([{ path: p, readOnly: true }])
    await disks.close()
  })
})
