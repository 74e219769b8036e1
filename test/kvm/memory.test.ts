/**
 * Guest RAM sizes on the kvm backend: a guest with RAM above 4 GiB (a high range larger than one
 * 4 GiB view) when the host has the memory for it, one with 3 GiB below the MMIO hole (views of
 * 2 GiB and 1 GiB), and a request above the host's memory refused with one line.
 * Nested (`npm run test:kvm`), the host is the outer guest: KTSTR_KVM_OUTER_MIB=10240 gives it
 * room for the 8 GiB boot.
 */
import os from 'node:os'
import { describe, expect, it } from 'vitest'
import { BOOT, exec, skipReason } from './helpers.js'

const MiB = 1024 * 1024
const hostMib = Math.floor(os.totalmem() / MiB)
const memTotalKib = (out: string) => Number(/MemTotal:\s+(\d+) kB/.exec(out)?.[1])

describe.skipIf(skipReason)('kvm backend guest memory', () => {
  it.skipIf(hostMib < 8192 + 1024)(`8192 MiB: the kernel sees it all (host ${hostMib} MiB)`, { timeout: BOOT }, async () => {
    const r = await exec(['--memory', '8192'], ['sh', '-c', 'grep MemTotal /proc/meminfo; dmesg | grep -m1 "usable" || true'])
    expect(r.code).toBe(0)
    expect(memTotalKib(r.stdout)).toBeGreaterThan(7.5 * 1024 * 1024)
  })

  it('3072 MiB: a 3 GiB range below the MMIO hole', { timeout: BOOT }, async () => {
    const r = await exec(['--memory', '3072'], ['sh', '-c', 'grep MemTotal /proc/meminfo'])
    expect(r.code).toBe(0)
    expect(memTotalKib(r.stdout)).toBeGreaterThan(2.8 * 1024 * 1024)
  })

  it('more than the host has: one line naming the limit', { timeout: BOOT }, async () => {
    const r = await exec(['--memory', String(hostMib + 1024)], ['true'])
    expect(r.code).toBe(125)
    // The option check (every backend) or, behind it, the kvm backend's own: either names the limit.
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^ktstr: .*\\b${hostMib}\\b.*(this host's memory|MiB)`))
  })
})
