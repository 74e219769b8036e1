/** Payloads: host programs copied into the guest with --include, with their ELF library closure. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { which } from '../../src/util/which.js'
import { guestSkipReason, runCli, strayQemus } from '../helpers/guest.js'

const BOOT = 120_000
const stressNg = which('stress-ng')
const kernelDir = process.env.KTSTR_KERNEL
const scxSimple = kernelDir && fs.existsSync(`${kernelDir}/scx/scx_simple`) ? `${kernelDir}/scx/scx_simple` : undefined
if (!guestSkipReason && !stressNg) console.warn('[ktstr tests] skipping the stress-ng payload test: apt-get install stress-ng')

describe.skipIf(guestSkipReason)('ktstr exec --include', () => {
  it.skipIf(!stressNg)('runs a Debian-packaged tool (stress-ng) in the guest', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--include', stressNg!, '--', 'stress-ng', '--cpu', '2', '--timeout', '3s'])
    expect(r.stderr + r.stdout).toMatch(/successful run completed/)
    expect(r.code).toBe(0)
  })

  it.skipIf(!scxSimple)('brings non-libc libraries along (scx_simple needs libelf and libz) and runs it as a payload', { timeout: BOOT }, async () => {
    const script = `${scxSimple} >/dev/null 2>&1 & for i in $(seq 50); do [ "$(cat /sys/kernel/sched_ext/state)" = enabled ] && break; sleep 0.2; done; cat /sys/kernel/sched_ext/root/ops; kill -INT $!; wait`
    const r = await runCli(['exec', '-i', scxSimple!, '--', 'sh', '-c', script])
    expect(r.stdout).toBe('simple\n')
    expect(r.code).toBe(0)
  })

  it('a program missing from the image fails with a hint to --include it', { timeout: BOOT }, async () => {
    const r = await runCli(['exec', '--', '/usr/bin/no-such-tool-here', '--version'])
    expect(r.code).toBe(127)
    expect(r.stderr).toContain('/usr/bin/no-such-tool-here is not in the guest image; add it with --include /usr/bin/no-such-tool-here')
  })

  it('copies symlinks in an included folder as symlinks: links to / and outside bring nothing, links inside work', { timeout: BOOT }, async () => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-include-links-')))
    try {
      const inc = path.join(dir, 'inc')
      fs.mkdirSync(path.join(inc, 'sub'), { recursive: true })
      fs.mkdirSync(path.join(dir, 'secret'))
      fs.writeFileSync(path.join(dir, 'secret/id_rsa'), 'PRIVATE KEY')
      fs.writeFileSync(path.join(inc, 'sub/file.txt'), 'inside')
      fs.symlinkSync('/', path.join(inc, 'up'))
      fs.symlinkSync(path.join(dir, 'secret'), path.join(inc, 'keys'))
      fs.symlinkSync('sub/file.txt', path.join(inc, 'alias'))
      const script = `readlink ${inc}/up; cat ${inc}/alias; echo; cat ${inc}/keys/id_rsa 2>/dev/null || echo no keys`
      const r = await runCli(['exec', '--include', inc, '--', 'sh', '-c', script])
      expect(r.stdout).toBe('/\ninside\nno keys\n')
      expect(r.code).toBe(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("refuses an include too big to unpack in the guest's memory, before booting", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-include-big-'))
    try {
      const big = path.join(dir, 'big.img')
      fs.writeFileSync(big, '')
      fs.truncateSync(big, 1 << 30) // sparse: 1 GiB by its size, nothing on disk, nothing read
      const r = await runCli(['exec', '--memory', '512', '--include', dir, '--', 'true'])
      expect(r.code).toBe(125)
      expect(r.stderr.trim()).toMatch(
        /^ktstr: the guest image does not fit a 512 MiB guest: the base image \(\d+ MiB\) plus the included files \(at least 1024 MiB\) exceed the \d+ MiB it can unpack \(Linux gives the initramfs half of the RAM beside the archive\); give the guest more memory \(--memory, or memory= in a test file\) or put big files on a disk image \(--disk\)$/,
      )
      expect(strayQemus(r)).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses an include that does not exist on the host, before booting', async () => {
    const r = await runCli(['exec', '--include', '/nonexistent/thing', '--', 'true'])
    expect(r.code).toBe(125)
    expect(r.stderr.trim()).toBe('ktstr: include /nonexistent/thing: no such file or directory on the host')
  })
})
