/**
 * Shared by the kvm-backend suites (test/kvm/*.test.ts): whether they can run here, and
 * `ktstr exec --backend kvm` as a child process.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { probeKvm } from '../../src/vm/accel.js'
import { cliPath, repoRoot } from '../helpers/repo.js'

const sharedKernel = path.resolve(repoRoot, '..', 'shared', 'guest')
const kernel = process.env.KTSTR_KERNEL ?? (fs.existsSync(path.join(sharedKernel, 'bzImage')) ? sharedKernel : undefined)

const kvm = probeKvm()
export const skipReason = !kvm.usable
  ? `KVM is not usable here (${kvm.reason}); run npm run test:kvm`
  : !fs.existsSync(cliPath)
    ? `${cliPath} is missing (npm run build)`
    : !kernel
      ? 'no guest kernel (set KTSTR_KERNEL)'
      : undefined
if (skipReason) console.warn(`[ktstr tests] skipping kvm-backend guests: ${skipReason}`)

/** Nested under TCG a boot takes tens of seconds; the 8-vCPU topology the longest. */
export const BOOT = 200_000

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export function exec(args: string[], cmd: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'exec', '--backend', 'kvm', '--timeout', '150', ...args, '--', ...cmd], {
      env: { ...process.env, KTSTR_KERNEL: kernel, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    child.on('error', reject)
    child.on('close', (code) => {
      // Shown in the test log: the boot phases nested runs take, or why ktstr failed.
      const timing = /ktstr timing:[\s\S]*/.exec(stderr)?.[0]
      if (timing) console.log(`${cmd.join(' ').slice(0, 60)}\n${timing}`)
      if (code === 125) console.log(`ktstr failed:\n${stderr.split('\n').slice(-60).join('\n')}`)
      resolve({ code, stdout, stderr })
    })
  })
}
