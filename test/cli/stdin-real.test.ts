/**
 * Stdin flow control end to end (real QEMU guests): a fast producer and a command that reads late
 * neither fill the guest's memory (init holds at most the window) nor lose a byte, and Ctrl-C
 * still reaches the command while its stdin is blocked. Under TCG the guest takes stdin at about
 * 2.5 MB/s, which sets the sizes here.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { cliPath, guestSkipReason } from '../helpers/guest.js'

const MiB = 1024 * 1024

/** Runs the CLI with `bytes` of zeros on its stdin (written as fast as it takes them). */
function runWithInput(args: string[], bytes: number, opts: { onStdout?: (text: string, kill: (s: NodeJS.Signals) => void) => void } = {}) {
  const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-stdin-'))
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, TMPDIR: tmpdir }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b) => {
    stdout += b
    opts.onStdout?.(stdout, (s) => child.kill(s))
  })
  child.stderr.on('data', (b) => (stderr += b))
  child.stdin.on('error', () => {}) // the CLI may exit before taking everything
  const chunk = Buffer.alloc(MiB)
  let left = bytes
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length)
      left -= n
      if (!child.stdin.write(chunk.subarray(0, n))) return void child.stdin.once('drain', pump)
    }
    child.stdin.end()
  }
  pump()
  return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve) => {
    const t0 = performance.now()
    child.on('close', (code) => {
      fs.rmSync(tmpdir, { recursive: true, force: true })
      resolve({ code, stdout, stderr, ms: performance.now() - t0 })
    })
  })
}

describe.skipIf(guestSkipReason)('stdin flow control (real guests)', () => {
  it('a command that reads late gets every byte; init holds at most the window meanwhile', { timeout: 120_000 }, async () => {
    // init's RSS before and after 8 s of a fast producer and a command that does not read: the
    // old code buffered what arrived (about 20 MB in that time) in init, and a longer sleep
    // ran a 320 MiB guest out of memory. Now init holds the 1 MiB window.
    const script = 'a=$(sed -n "s/VmRSS://p" /proc/1/status); sleep 8; b=$(sed -n "s/VmRSS://p" /proc/1/status); echo $a $b; wc -c'
    const size = 48 * MiB
    const r = await runWithInput(['exec', '--memory', '320', '--', 'sh', '-c', script], size)
    expect(r.stderr).toBe('')
    const [before, , after, , count] = r.stdout.trim().split(/\s+/)
    expect(Number(count)).toBe(size)
    expect(Number(after) - Number(before)).toBeLessThan(8 * 1024) // kB
    expect(r.code).toBe(0)
  })

  it('Ctrl-C reaches a command whose stdin is blocked (an endless producer, a command that never reads)', { timeout: 120_000 }, async () => {
    let sent = false
    const r = await runWithInput(['exec', '--', 'sh', '-c', 'echo ready; sleep 1000'], Number.MAX_SAFE_INTEGER, {
      onStdout: (text, kill) => {
        if (!sent && text.includes('ready')) {
          sent = true
          // Let a window of stdin pile up first.
          setTimeout(() => kill('SIGINT'), 2000)
        }
      },
    })
    expect(sent).toBe(true)
    expect(r.stdout).toBe('ready\n')
    expect(r.code).toBe(130)
  })
})
