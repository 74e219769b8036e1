/** The opt-in disk boot (KTSTR_BASE_DISK=1) in a real guest: node runs from the read-only base disk. */
import { describe, expect, it } from 'vitest'
import { guestSkipReason, runCli } from '../helpers/guest.js'

describe.skipIf(guestSkipReason)('disk boot (KTSTR_BASE_DISK=1, real guest)', () => {
  it('mounts the base image read-only at /ktstr/base and runs node from it', { timeout: 120_000 }, async () => {
    const script = `grep ' /ktstr/base ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; node -e 'console.log(process.version)'`
    const r = await runCli(['exec', '--', 'sh', '-c', script], { env: { KTSTR_BASE_DISK: '1' } })
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/^ext4 ro\nv\d+\.\d+\.\d+\n$/)
    expect(r.code).toBe(0)
  })
})
