/** `ktstr doctor` as a user runs it: every check on one line, informational ones never fail it. */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { MIN_NODE } from '../../src/util/node-version.js'
import { which } from '../../src/util/which.js'
import { runCli } from '../helpers/cli.js'
import { repoRoot, testKernel } from '../helpers/repo.js'

const env = { KTSTR_KERNEL: testKernel, NO_COLOR: '1' }

describe('ktstr doctor', () => {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-doctor-'))
  afterAll(() => fs.rmSync(bin, { recursive: true, force: true }))

  it('names setpriv, which keeps QEMU from outliving a SIGKILLed ktstr', async () => {
    const r = await runCli(['doctor'], { env })
    expect(r.stdout).toMatch(new RegExp(`^✓ setpriv +${which('setpriv')}: QEMU dies with ktstr$`, 'm'))
  })

  it('without setpriv says what to install, and the doctor still passes on it alone', async () => {
    // A PATH with QEMU and nothing else: setpriv is missing, the other checks are as before.
    const qemu = which('qemu-system-x86_64')!
    fs.symlinkSync(qemu, path.join(bin, 'qemu-system-x86_64'))
    const before = await runCli(['doctor'], { env })
    const r = await runCli(['doctor'], { env: { ...env, PATH: bin } })
    expect(r.stdout).toMatch(/^! setpriv +setpriv missing \(apt-get install util-linux\): QEMU outlives a ktstr killed with SIGKILL$/m)
    expect(r.code).toBe(before.code)
  })

  it('names the Node it runs on and the minimum, which is what package.json engines asks for', async () => {
    const r = await runCli(['doctor'], { env })
    expect(r.stdout).toMatch(new RegExp(`^✓ node +v${process.versions.node.replaceAll('.', '\\.')} \\(ktstr needs >= ${MIN_NODE}\\)$`, 'm'))
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'))
    expect(pkg.engines.node).toBe(`>=${MIN_NODE}`)
  })

  it('on a Node older than the minimum, `ktstr doctor` says so in one line instead of failing to load', () => {
    // No older Node on this machine: the installed ktstr executable runs with process.versions.node
    // reported as 20.14.0 (the release before zlib.crc32), as a user's old Node would report it.
    const old = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.14.0"})'
    const bin = path.join(repoRoot, 'dist', 'src', 'cli', 'bin.js')
    const r = spawnSync(process.execPath, ['--import', old, bin, 'doctor'], { encoding: 'utf8', env: { ...process.env, ...env } })
    expect(r.stderr).toBe(`ktstr: Node v20.14.0 is too old: ktstr needs Node >= ${MIN_NODE}; install a newer Node (20 LTS or later)\n`)
    expect(r.stdout).toBe('')
    expect(r.status).toBe(125)
  })

  it('the ktstr executable runs its commands on a supported Node', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'bin.js'), '--help'], { encoding: 'utf8' })
    expect(r.stdout).toMatch(/^usage: ktstr <command>/)
    expect(r.status).toBe(0)
  })
})
