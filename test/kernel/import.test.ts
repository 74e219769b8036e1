import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { listCachedKernels } from '../../src/kernel/cache.js'
import { importKernel } from '../../src/kernel/import.js'
import { resolveKernel } from '../../src/kernel/resolve.js'
import { haveRealKernel, REAL_KERNEL } from './helpers.js'

const shared = REAL_KERNEL
const haveShared = haveRealKernel
if (!haveShared) console.warn(`[ktstr tests] skipping kernel import: no real kernel folder (KTSTR_KERNEL or the cache)`)

afterEach(() => vi.unstubAllEnvs())

describe.skipIf(!haveShared)('ktstr kernel import', () => {
  it('copies a ready kernel into the cache, where resolution then finds it; a second import is a no-op', () => {
    vi.stubEnv('XDG_CACHE_HOME', fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-import-')))
    vi.stubEnv('KTSTR_KERNEL', '')
    const first = importKernel(shared)
    expect(first.imported).toBe(true)
    expect(first.key).toMatch(/^6\.\d+\.\d+-import-[0-9a-f]{10}$/)
    expect(fs.readFileSync(first.kernel.bzImage).equals(fs.readFileSync(path.join(shared, 'bzImage')))).toBe(true)
    expect(listCachedKernels().map((k) => [k.key, k.meta.schedulers])).toEqual([[first.key, ['scx_central', 'scx_flatcg', 'scx_qmap', 'scx_simple']]])
    expect(importKernel(shared).imported).toBe(false)
    return resolveKernel().then((k) => expect(k.bzImage).toBe(first.kernel.bzImage))
  })

  it('refuses a folder without a sched_ext kernel', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-import-bad-'))
    fs.copyFileSync(path.join(shared, 'bzImage'), path.join(dir, 'bzImage'))
    fs.writeFileSync(path.join(dir, 'config'), '# CONFIG_SCHED_CLASS_EXT is not set\n')
    expect(() => importKernel(dir)).toThrow(/has no CONFIG_SCHED_CLASS_EXT=y/)
  })
})
