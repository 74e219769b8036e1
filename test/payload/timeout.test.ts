/**
 * payload()'s timeout on real processes (on the host: payload() is plain node child_process): it
 * kills the whole process group, so a grandchild that would outlive its parent — and keep the
 * payload's stdout open — goes too.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { payload } from '../../runtime/payload/payload.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-payload-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Alive and not a zombie waiting for its reaper. */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

describe('payload timeout', () => {
  it('kills the payload and the grandchild it left holding its stdout', async () => {
    const pidFile = path.join(dir, 'grandchild.pid')
    // Without the group kill the grandchild keeps stdout open and payload() waits for it (1000 s).
    const script = `sleep 1000 & echo $! > ${pidFile}; echo started; wait`
    const r = await payload('/bin/sh', { args: ['-c', script], timeout: 300 })
    expect(r.timedOut).toBe(true)
    expect(r.signal).toBe('SIGKILL')
    expect(r.stdout).toBe('started\n')
    const grandchild = Number(fs.readFileSync(pidFile, 'utf8'))
    expect(grandchild).toBeGreaterThan(0)
    expect(running(grandchild)).toBe(false)
  })

  it('a payload that ends in time is not touched', async () => {
    const r = await payload('/bin/sh', { args: ['-c', 'echo done'], timeout: 60_000 })
    expect(r).toMatchObject({ timedOut: false, exitCode: 0, signal: null, stdout: 'done\n' })
  })
})
