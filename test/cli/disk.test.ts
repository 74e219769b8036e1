/** virtio-blk disks from the host (`--disk`) with the QEMU backend: data lands, ro refuses, throttle paces. */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { checkDisk, parseDiskSpec } from '../../src/vm/disk.js'
import { diskCases } from '../helpers/disk-cases.js'
import { scratch } from '../helpers/disk.js'
import { guestSkipReason, runCli } from '../helpers/guest.js'

const BOOT = 120_000

describe('parseDiskSpec', () => {
  it('reads FILE[,ro][,iops=N][,bps=N]', () => {
    expect(parseDiskSpec('d.img,ro,iops=50,bps=1048576', '/x')).toEqual({ path: '/x/d.img', readOnly: true, iops: 50, bps: 1048576 })
    expect(() => parseDiskSpec('d.img,fast')).toThrow(/bad disk option "fast"/)
  })
})

describe.skipIf(guestSkipReason)('ktstr exec --disk (qemu backend)', () => {
  // The same guest commands as the kvm backend's suite (test/kvm/disk.test.ts).
  for (const c of diskCases) {
    it(c.name, { timeout: BOOT }, async () => {
      const p = c.prepare()
      try {
        p.verify(await runCli(['exec', '--backend', 'qemu', ...p.args, '--', 'sh', '-c', p.script]))
      } finally {
        p.cleanup()
      }
    })
  }

  it('a disk in use by another run is refused with one line, before booting', { timeout: BOOT }, async () => {
    const img = scratch(1 << 20)
    onTestFinished(() => fs.rmSync(path.dirname(img), { recursive: true, force: true }))
    const first = runCli(['exec', '--backend', 'qemu', '--disk', img, '--', 'sh', '-c', 'sleep 3; echo first done'])
    // Once the first run's QEMU holds the image, the host's check sees its locks.
    const inUse = () => {
      try {
        checkDisk({ path: img, readOnly: true })
        return false
      } catch {
        return true
      }
    }
    const end = Date.now() + BOOT / 2
    while (!inUse() && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    for (const disk of [img, `${img},ro`]) {
      const second = await runCli(['exec', '--backend', 'qemu', '--disk', disk, '--', 'true'])
      expect(second.code).toBe(125)
      expect(second.stderr.trim()).toBe(`ktstr: disk ${img} is in use by another guest (locked read-write); stop that guest first or give this one a copy of the image`)
    }
    const r = await first
    expect(r.stdout).toContain('first done')
    expect(r.code).toBe(0)
  })

  it('refuses a missing disk file before booting', async () => {
    const r = await runCli(['exec', '--disk', '/nonexistent/disk.img', '--', 'true'])
    expect(r.code).toBe(125)
    expect(r.stderr.trim()).toBe('ktstr: disk /nonexistent/disk.img does not exist; create it first, e.g. truncate -s 64M /nonexistent/disk.img')
  })
})
