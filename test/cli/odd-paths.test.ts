/**
 * Host paths with spaces and commas: the run folder (TMPDIR), node and the ktstr package. QEMU
 * option strings need their commas doubled; the kernel command line gets no host path at all.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cliPath, guestSkipReason, repoRoot, runCli } from '../helpers/guest.js'

/** QEMU processes whose command line mentions `dir`. */
function qemusUnder(dir: string): string[] {
  return fs.readdirSync('/proc').filter((pid) => {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return /^\d+$/.test(pid) && cmd.includes('qemu-system') && cmd.includes(dir)
    } catch {
      return false
    }
  })
}

describe.skipIf(guestSkipReason)('ktstr exec from odd host paths (real guest)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-odd-'))
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

  it('TMPDIR, node and the package under folders named "a,b c"', { timeout: 240_000 }, async () => {
    // node copied (process.execPath is the real file, so a symlink would not do), the package
    // reached through a symlink that node keeps (--preserve-symlinks-main), TMPDIR beside them.
    const odd = path.join(root, 'a,b c')
    const tmp = path.join(odd, 'tmp')
    fs.mkdirSync(path.join(odd, 'n o,de'), { recursive: true })
    fs.mkdirSync(tmp)
    const node = path.join(odd, 'n o,de', 'node')
    fs.copyFileSync(process.execPath, node)
    fs.chmodSync(node, 0o755)
    const pkg = path.join(odd, 'k t,str')
    fs.symlinkSync(repoRoot, pkg)
    // A fresh cache: this node gets its own base image, which must not evict the suite's.
    const kernel = process.env.KTSTR_KERNEL || path.dirname((await runCli(['kernel', 'path'])).stdout.trim())
    const env = { ...process.env, TMPDIR: tmp, XDG_CACHE_HOME: path.join(root, 'cache'), KTSTR_KERNEL: kernel }
    const cli = path.join(pkg, path.relative(repoRoot, cliPath))
    // The largest timeout Node's timers hold: it must not fire at once.
    const argv = ['--preserve-symlinks', '--preserve-symlinks-main', cli, 'exec', '--timeout', '2147483', '--', 'sh', '-c', 'echo hi; tr "\\0" " " < /proc/1/cmdline']
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(node, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (b) => (stdout += b))
      child.stderr.on('data', (b) => (stderr += b))
      child.on('close', (code) => resolve({ code, stdout, stderr }))
    })
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('hi\n/ktstr/node /ktstr/init.js ') // cmdline ends in NUL
    expect(r.code).toBe(0)
    expect(qemusUnder(odd)).toEqual([])
    expect(fs.readdirSync(tmp)).toEqual([]) // the run folder is gone
  })
})
