/** Bad input gets one clear line naming the fix, a non-zero exit, no stack trace and no stray VM. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { cliPath, runCli, strayQemus } from '../helpers/guest.js'

function expectOneLineError(r: { code: number | null; stderr: string; stdout: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0)
  const lines = r.stderr.trim().split('\n')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^ktstr: /)
  expect(lines[0]).toMatch(pattern)
}

const kernel = process.env.KTSTR_KERNEL
const built = fs.existsSync(cliPath)

describe.skipIf(!built)('ktstr exec rejects bad input before booting', () => {
  it('bad topology string', async () => {
    expectOneLineError(await runCli(['exec', '--topology', '2n3l1c1t', '--', 'true']), /3 LLCs cannot be spread evenly over 2 NUMA nodes/)
    expectOneLineError(await runCli(['exec', '--topology', 'eight', '--', 'true']), /expected NnNlNcNt/)
  })

  it('missing kernel', async () => {
    const r = await runCli(['exec', '--', 'true'], { env: { KTSTR_KERNEL: '/nonexistent/bzImage' } })
    expectOneLineError(r, /does not exist; .*ktstr kernel build/)
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-nocache-'))
    const r2 = await runCli(['exec', '--', 'true'], { env: { KTSTR_KERNEL: '', XDG_CACHE_HOME: empty } })
    expectOneLineError(r2, /no guest kernel found: pass --kernel .*KTSTR_KERNEL.*ktstr kernel build/)
  })

  it.skipIf(!kernel)('kernel without sched_ext', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-noscx-'))
    fs.copyFileSync(path.join(kernel!, 'bzImage'), path.join(dir, 'bzImage'))
    fs.writeFileSync(path.join(dir, 'config'), 'CONFIG_SMP=y\n# CONFIG_SCHED_CLASS_EXT is not set\n')
    expectOneLineError(await runCli(['exec', '--kernel', dir, '--', 'true']), /has no CONFIG_SCHED_CLASS_EXT=y.*ktstr kernel build/)
  })

  it.skipIf(!kernel)('unknown scheduler', async () => {
    expectOneLineError(await runCli(['exec', '--scheduler', 'scx_nope', '--', 'true']), /unknown scheduler "scx_nope".*scx_simple/)
  })

  it.skipIf(!kernel)('missing qemu', async () => {
    const r = await runCli(['exec', '--', 'true'], { env: { PATH: '/nonexistent' } })
    expectOneLineError(r, /qemu-system-x86_64 not found on PATH; install it: apt-get install qemu-system-x86/)
    expect(strayQemus(r)).toEqual([])
  })

  it('bad flags and values', async () => {
    expectOneLineError(await runCli(['exec', '--memory', 'lots', '--', 'true']), /bad --memory="lots": expected a whole number of MiB from \d+ to \d+ \(this host's memory\)$/)
    // Past the host's memory, and past what Node's timers hold (a longer timeout used to fire at once).
    expectOneLineError(await runCli(['exec', '--memory', '99999999999999999999', '--', 'true']), /bad --memory="99999999999999999999": .* to \d+ \(this host's memory\)$/)
    expectOneLineError(await runCli(['exec', '--timeout', '3000000', '--', 'true']), /bad --timeout="3000000": .* at most 2147483 \(about 24 days/)
    expectOneLineError(await runCli(['exec', '--backend', 'xen', '--', 'true']), /bad --backend="xen": expected qemu, kvm or auto$/)
    expectOneLineError(await runCli(['exec', '--bogus']), /Unknown option '--bogus'/)
    expectOneLineError(await runCli(['exec']), /exec needs a command after --/)
    // Node's own multi-line parse errors and values with line breaks still make one line.
    expectOneLineError(await runCli(['exec', '--kernel', '--kernel', '', '--', 'true']), /argument is ambiguous; see ktstr --help$/)
    expectOneLineError(await runCli(['exec', '--env=a\nb', '--', 'true']), /bad --env="a\\nb": expected NAME=VALUE$/)
  })
})
