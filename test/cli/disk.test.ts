/** virtio-blk disks from the host (`--disk`) with the QEMU backend: data lands, ro refuses, throttle paces. */
import { describe, expect, it } from 'vitest'
import { parseSpec } from '../../src/vm/spec/parse.js'
import { diskCases } from '../helpers/disk-cases.js'
import { secondRunIsRefused } from '../helpers/disk-in-use.js'
import { guestSkipReason, runCli } from '../helpers/guest.js'

const BOOT = 120_000

describe('--disk values', () => {
  it('reads FILE[,ro][,iops=N][,bps=N], each --disk on its own', () => {
    expect(parseSpec({ disk: ['d.img,ro,iops=50,bps=1048576', '/e.img'] }, 'flag', '/x').disks).toEqual([
      { path: '/x/d.img', readOnly: true, iops: 50, bps: 1048576 },
      { path: '/e.img', readOnly: false },
    ])
    expect(() => parseSpec({ disk: ['e.img', 'd.img,fast'] }, 'flag')).toThrow('bad --disk="d.img,fast": bad disk option "fast": use ro, iops=N or bps=N')
    expect(() => parseSpec({ disk: [',ro'] }, 'flag')).toThrow('bad --disk=",ro": expected FILE[,ro][,iops=N][,bps=N]')
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

  it('a disk in use by another run is refused with one line, before booting', { timeout: BOOT }, () =>
    secondRunIsRefused((args, cmd) => runCli(['exec', '--backend', 'qemu', ...args, '--', ...cmd]), BOOT / 2),
  )

  it('refuses a missing disk file before booting', async () => {
    const r = await runCli(['exec', '--disk', '/nonexistent/disk.img', '--', 'true'])
    expect(r.code).toBe(125)
    expect(r.stderr.trim()).toBe('ktstr: disk /nonexistent/disk.img does not exist; create it first, e.g. truncate -s 64M /nonexistent/disk.img')
  })
})
