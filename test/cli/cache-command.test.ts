// `ktstr cache list|clean` over a cache folder of its own (XDG_CACHE_HOME): entries with their
// manifests and parts are listed with their disk use, and cleaned, except one in use.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { cacheCommand } from '../../src/cli/cache-command.js'
import { lockPath, manifestPath, partPath } from '../../src/image/cache-entry.js'
import { FileLock } from '../../src/util/file-lock.js'

let root: string
let out: string
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-cache-cmd-'))
  vi.stubEnv('XDG_CACHE_HOME', root)
  vi.stubEnv('KTSTR_SNAPSHOT_DIR', '')
  vi.stubEnv('KTSTR_SNAPSHOT_CACHE_MIB', '')
  out = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true))
})
afterEach(() => {
  vi.restoreAllMocks()
  vi.unstubAllEnvs()
  fs.rmSync(root, { recursive: true, force: true })
})

function entry(dir: string, name: string, kib: number, part?: number): string {
  fs.mkdirSync(dir, { recursive: true })
  const p = path.join(dir, name)
  fs.writeFileSync(p, Buffer.alloc(kib * 1024, 1))
  if (part) fs.writeFileSync(partPath(p, 'ram0'), Buffer.alloc(part * 1024, 1))
  fs.writeFileSync(manifestPath(p), '{}')
  return p
}

describe('ktstr cache', () => {
  it('lists snapshots (parts counted) and images, then cleans all but the one in use', () => {
    const snap = entry(path.join(root, 'ktstr', 'snapshots'), 'snapshot-0123abcd.qemu', 1024, 3072)
    const base = entry(path.join(root, 'ktstr', 'images'), 'base-89ab.cpio', 2048)
    const node = entry(path.join(root, 'ktstr', 'images'), 'node-77-stripped', 1024)
    expect(cacheCommand(['list'])).toBe(0)
    const lines = out.trim().split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(new RegExp(`^snapshot +4 MiB  \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z  ${snap}$`))
    expect(lines[1]).toMatch(new RegExp(`^image +2 MiB  .+  ${base}$`))
    expect(lines[2]).toMatch(new RegExp(`^node +1 MiB  .+  ${node}$`))
    expect(lines[3]).toBe(`snapshots: 4 MiB of 2048 MiB (KTSTR_SNAPSHOT_CACHE_MIB) in ${path.join(root, 'ktstr', 'snapshots')}`)

    out = ''
    const held = FileLock.tryAcquire(lockPath(node), 'shared')!
    try {
      expect(cacheCommand(['clean'])).toBe(0)
    } finally {
      held.release()
    }
    expect(out).toBe('removed 6 MiB; in use, kept: node-77-stripped\n')
    expect([snap, partPath(snap, 'ram0'), manifestPath(snap), base, node].map((p) => fs.existsSync(p))).toEqual([false, false, false, false, true])
  })

  it('refuses anything but list or clean, and a bad KTSTR_SNAPSHOT_CACHE_MIB, with one line', () => {
    vi.stubEnv('KTSTR_SNAPSHOT_CACHE_MIB', '2G')
    expect(() => cacheCommand(['list'])).toThrow('bad KTSTR_SNAPSHOT_CACHE_MIB="2G": expected a whole number of MiB (0 keeps none but the last)')
    expect(() => cacheCommand([])).toThrow('cache needs list or clean; usage: ktstr cache list | clean')
    expect(() => cacheCommand(['purge'])).toThrow('cache needs list or clean, not purge; usage: ktstr cache list | clean')
  })
})
