/** virtio-blk disks from the host (`--disk`) with the QEMU backend: data lands, ro refuses, throttle paces. */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseDiskSpec } from '../../src/vm/disk.js'
import { guestSkipReason, runCli } from '../helpers/guest.js'

const BOOT = 120_000
const MiB = 1048576
const pattern = (bytes: number) => Buffer.from('ktstr-pattern\n'.repeat(Math.ceil(bytes / 14))).subarray(0, bytes)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

function scratch(size: number): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-disk-')), 'disk.img')
  fs.writeFileSync(file, Buffer.alloc(0))
  fs.truncateSync(file, size)
  return file
}

describe('parseDiskSpec', () => {
  it('reads FILE[,ro][,iops=N][,bps=N]', () => {
    expect(parseDiskSpec('d.img,ro,iops=50,bps=1048576', '/x')).toEqual({ path: '/x/d.img', readOnly: true, iops: 50, bps: 1048576 })
    expect(() => parseDiskSpec('d.img,fast')).toThrow(/bad disk option "fast"/)
  })
})

describe.skipIf(guestSkipReason)('ktstr exec --disk (qemu backend)', () => {
  it('writes a pattern to /dev/vda that the host file then holds exactly, paced by the bps throttle', { timeout: BOOT }, async () => {
    const disk = scratch(16 * MiB)
    const script = [
      'a=$(cut -d" " -f1 /proc/uptime)',
      `yes ktstr-pattern | head -c ${4 * MiB} | dd of=/dev/vda bs=64k oflag=direct conv=fsync 2>/dev/null`,
      'b=$(cut -d" " -f1 /proc/uptime)',
      'sync',
      'echo "$a $b"',
    ].join('; ')
    const r = await runCli(['exec', '--backend', 'qemu', '--disk', `${disk},bps=${MiB}`, '--', 'sh', '-c', script])
    expect(r.code).toBe(0)
    const [t0, t1] = r.stdout.trim().split(' ').map(Number)
    const rate = 4 / (t1! - t0!) // MiB/s
    expect(rate).toBeGreaterThan(0.8)
    expect(rate).toBeLessThan(1.2)
    const host = fs.readFileSync(disk)
    expect(sha(host.subarray(0, 4 * MiB))).toBe(sha(pattern(4 * MiB)))
    expect(host.subarray(4 * MiB).every((b) => b === 0)).toBe(true)
  })

  it('a read-only disk refuses writes in the guest and stays unchanged', { timeout: BOOT }, async () => {
    const disk = scratch(MiB)
    const r = await runCli(['exec', '--disk', `${disk},ro`, '--', 'sh', '-c', 'cat /sys/block/vda/ro; echo x | dd of=/dev/vda conv=fsync 2>/dev/null; echo rc=$?'])
    expect(r.stdout).toBe('1\nrc=1\n')
    expect(fs.readFileSync(disk).every((b) => b === 0)).toBe(true)
  })

  it('refuses a missing disk file before booting', async () => {
    const r = await runCli(['exec', '--disk', '/nonexistent/disk.img', '--', 'true'])
    expect(r.code).toBe(125)
    expect(r.stderr.trim()).toBe('ktstr: disk /nonexistent/disk.img does not exist; create it first, e.g. truncate -s 64M /nonexistent/disk.img')
  })
})
