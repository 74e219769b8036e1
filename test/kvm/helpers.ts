/**
 * Shared by the kvm-backend suites (test/kvm/*.test.ts): whether they can run here, and
 * `ktstr exec --backend kvm` as a child process.
 */
import fs from 'node:fs'
import { probeKvm } from '../../src/vm/accel.js'
import { type CliResult, runCli } from '../helpers/cli.js'
import { cliPath, testKernel } from '../helpers/repo.js'

const kvm = probeKvm()
export const skipReason = !kvm.usable
  ? `KVM is not usable here (${kvm.reason}); run npm run test:kvm`
  : !fs.existsSync(cliPath)
    ? `${cliPath} is missing (npm run build)`
    : !testKernel
      ? 'no guest kernel (set KTSTR_KERNEL)'
      : undefined
if (skipReason) console.warn(`[ktstr tests] skipping kvm-backend guests: ${skipReason}`)

/** Nested under TCG a boot takes tens of seconds; the 8-vCPU topology the longest. */
export const BOOT = 200_000

/** `ktstr exec --backend kvm ARGS -- CMD`; logs the boot phases, or why ktstr failed. */
export async function exec(args: string[], cmd: string[]): Promise<CliResult> {
  const r = await runCli(['exec', '--backend', 'kvm', '--timeout', '150', ...args, '--', ...cmd], {
    env: { KTSTR_KERNEL: testKernel, NO_COLOR: '1' },
    timeoutMs: BOOT,
  })
  // Shown in the test log: the boot phases nested runs take, or why ktstr failed.
  const timing = /ktstr timing:[\s\S]*/.exec(r.stderr)?.[0]
  if (timing) console.log(`${cmd.join(' ').slice(0, 60)}\n${timing}`)
  if (r.code === 125) console.log(`ktstr failed:\n${r.stderr.split('\n').slice(-60).join('\n')}`)
  return r
}
