/** Run folders: named for their owner, removed at its exit, swept when the owner died without cleaning up. */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { processStartTime, sweepRunDirs } from '../../src/vm/run-dir.js'
import { repoRoot } from '../helpers/repo.js'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-run-dir-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

function folder(name: string): string {
  const dir = path.join(tmp, name)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'initrd.cpio'), 'x')
  return name
}

describe('run folders', () => {
  it('sweeps only folders whose owner is gone or whose pid now names another process', () => {
    const dead = spawnSync('true').pid!
    const mine = folder(`ktstr-vm-${process.pid}-${processStartTime(process.pid)}-aaaaaa`)
    folder(`ktstr-vm-${dead}-${processStartTime(process.pid)}-bbbbbb`) // its owner exited
    folder(`ktstr-vm-${process.pid}-1-cccccc`) // its pid is now another process
    const other = folder('ktstr-cli-dddddd')
    sweepRunDirs(tmp)
    expect(fs.readdirSync(tmp).sort()).toEqual([other, mine].sort())
  })

  it("a host's exit removes its run folders (the exit hook), and its folder names it", () => {
    const script = `
      import { createRunDir } from ${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'vm', 'run-dir.js'))}
      const dir = createRunDir()
      process.stdout.write(dir)
      process.exit(3)`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8' })
    expect(r.status).toBe(3)
    expect(path.basename(r.stdout)).toMatch(new RegExp(`^ktstr-vm-${r.pid}-\\d+-`))
    expect(fs.existsSync(r.stdout)).toBe(false)
  })
})
