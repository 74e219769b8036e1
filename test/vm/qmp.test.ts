// The QMP client (src/vm/qemu/qmp.ts) and connectQmp against a real QEMU with no machine: the
// greeting, a command's return, a refused command's error, and a QEMU that is gone.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { which } from '../../src/util/which.js'
import { connectQmp, shellWord } from '../../src/vm/qemu/snapshot.js'

const qemu = which('qemu-system-x86_64')
const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

function startQemu() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-qmp-'))
  dirs.push(dir)
  const sock = path.join(dir, 'qmp.sock')
  const child = spawn(qemu!, ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' })
  const exited = new Promise<void>((r) => child.on('close', () => r()))
  return { sock, child, exited }
}

describe.skipIf(!qemu)('QMP', () => {
  it('connects once QEMU listens, answers a command, and rejects a refused one with its reason', async () => {
    const q = startQemu()
    try {
      const qmp = await connectQmp(q.sock, q.exited)
      expect(await qmp.execute('query-status')).toMatchObject({ status: 'running' })
      await expect(qmp.execute('no-such-command')).rejects.toThrow('The command no-such-command has not been found')
      await expect(qmp.execute('migrate', { uri: 'bogus:x' })).rejects.toThrow(/bogus|URI|protocol/i)
      await qmp.execute('quit').catch(() => {})
      await q.exited
      await expect(qmp.execute('query-status')).rejects.toThrow('QEMU closed its QMP socket')
    } finally {
      q.child.kill('SIGKILL')
    }
  })

  it('gives up with one line when QEMU exits before listening', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-qmp-'))
    dirs.push(dir)
    const child = spawn(qemu!, ['-no-such-option'], { stdio: 'ignore' })
    const exited = new Promise<void>((r) => child.on('close', () => r()))
    await expect(connectQmp(path.join(dir, 'qmp.sock'), exited)).rejects.toThrow("cannot reach QEMU's QMP socket: QEMU exited")
  })
})

describe('shellWord', () => {
  it('quotes a path for /bin/sh, quotes included', () => {
    expect(shellWord("/a b/it's")).toBe(`'/a b/it'\\''s'`)
  })
})
