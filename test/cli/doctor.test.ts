/** `ktstr doctor` as a user runs it: every check on one line, informational ones never fail it. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { which } from '../../src/util/which.js'
import { runCli } from '../helpers/cli.js'
import { testKernel } from '../helpers/repo.js'

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
})
