/**
 * Real-guest tests need a sched_ext kernel, QEMU and the compiled CLI. Where one is missing they
 * skip with the reason printed; CI provides all three (the kernel through KTSTR_KERNEL or the cache).
 */
import fs from 'node:fs'
import path from 'node:path'
import { cacheRoot } from '../../src/util/paths.js'
import { which } from '../../src/util/which.js'
import { cliPath, repoRoot, testKernel } from './repo.js'

export { type CliResult, runCli, strayQemus } from './cli.js'
export { cliPath, repoRoot }

// The CLI runs these tests start resolve the kernel through KTSTR_KERNEL.
if (testKernel) process.env.KTSTR_KERNEL = testKernel

function missing(): string | undefined {
  if (!which('qemu-system-x86_64')) return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)'
  if (!fs.existsSync(cliPath)) return `${cliPath} is missing (npm run build)`
  const k = process.env.KTSTR_KERNEL
  const cache = path.join(cacheRoot(), 'kernels')
  if (!k && !(fs.existsSync(cache) && fs.readdirSync(cache).length)) return 'no guest kernel (set KTSTR_KERNEL or run ktstr kernel build)'
  return undefined
}

export const guestSkipReason = missing()
if (guestSkipReason) console.warn(`[ktstr tests] skipping real-guest tests: ${guestSkipReason}`)
