/** A guest that reported its result but is slow to power off: the result stands, the VM goes soon after. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { guestSkipReason, runCli, strayQemus } from '../helpers/guest.js'
import { slowPowerOff } from '../helpers/host-death.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-power-off-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe.skipIf(guestSkipReason)('power-off after the guest reported', () => {
  it('a final sync longer than the timeout: exit 0, not a timeout', { timeout: 120_000 }, async () => {
    // The guest's sync needs ~48 s, past the 30 s limit; the host kills the VM a few seconds after the exit report.
    const slow = slowPowerOff()
    const r = await runCli(['exec', '--timeout', '30', '--disk', slow.disk(dir), '--', ...slow.command])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('wrote\n')
    expect(r.code).toBe(0)
    expect(strayQemus(r)).toEqual([])
  })
})
