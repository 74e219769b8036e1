import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { listCachedKernels } from '../../src/kernel/cache.js'
import { resolveKernel } from '../../src/kernel/resolve.js'
import { KtstrError } from '../../src/util/errors.js'
import { fakeCacheEntry, fakeKernelDir, haveRealKernel, NO_SCHED_EXT_CONFIG, REAL_KERNEL, tempDir } from './helpers.js'

let root: string
let cache: string
beforeEach(() => {
  root = tempDir()
  cache = path.join(root, 'cache')
  vi.stubEnv('XDG_CACHE_HOME', cache)
  vi.stubEnv('KTSTR_KERNEL', '')
})
afterEach(() => {
  vi.unstubAllEnvs()
  vi.restoreAllMocks()
  fs.rmSync(root, { recursive: true, force: true })
})

describe('resolveKernel order', () => {
  it('explicit beats KTSTR_KERNEL beats the cache', async () => {
    const a = fakeKernelDir(path.join(root, 'a'))
    const b = fakeKernelDir(path.join(root, 'b'))
    const c = fakeCacheEntry(cache, '6.12.117-debian-0000000000', '2026-01-01T00:00:00Z')
    vi.stubEnv('KTSTR_KERNEL', b)
    expect(await resolveKernel(a)).toMatchObject({ bzImage: path.join(a, 'bzImage'), dir: a, origin: 'option' })
    expect(await resolveKernel()).toMatchObject({ bzImage: path.join(b, 'bzImage'), origin: 'env' })
    vi.stubEnv('KTSTR_KERNEL', '')
    expect(await resolveKernel()).toMatchObject({ bzImage: path.join(c, 'bzImage'), origin: 'cache', label: '6.12.117-debian-0000000000' })
  })

  it('picks the newest complete cache entry and skips partial and in-progress ones', async () => {
    fakeCacheEntry(cache, 'old', '2026-01-01T00:00:00Z')
    const newest = fakeCacheEntry(cache, 'new', '2026-03-01T00:00:00Z')
    fakeCacheEntry(cache, 'middle', '2026-02-01T00:00:00Z')
    fakeCacheEntry(cache, '.tmp-building-1', '2027-01-01T00:00:00Z')
    const noMeta = fakeKernelDir(path.join(cache, 'ktstr', 'kernels', 'nometa'))
    expect(fs.existsSync(noMeta)).toBe(true)
    expect(listCachedKernels().map((k) => k.key)).toEqual(['new', 'middle', 'old'])
    const k = await resolveKernel()
    expect(k.dir).toBe(newest)
    expect(k.schedulersDir).toBe(path.join(newest, 'scx'))
  })

  it('accepts a bzImage path, and resolves relative paths against cwd', async () => {
    const a = fakeKernelDir(path.join(root, 'k'))
    vi.spyOn(process, 'cwd').mockReturnValue(root)
    const k = await resolveKernel('k/bzImage')
    expect(k.bzImage).toBe(path.join(a, 'bzImage'))
    expect(k.dir).toBe(a)
    expect(k.config.get('CONFIG_SCHED_CLASS_EXT')).toBe('y')
    expect((await resolveKernel('k')).bzImage).toBe(path.join(a, 'bzImage'))
  })

  it('accepts a built kernel tree and a cache key', async () => {
    const tree = path.join(root, 'linux')
    fs.mkdirSync(path.join(tree, 'arch/x86/boot'), { recursive: true })
    fs.writeFileSync(path.join(tree, 'arch/x86/boot/bzImage'), 'x')
    fs.writeFileSync(path.join(tree, '.config'), 'CONFIG_SCHED_CLASS_EXT=y\n')
    expect(await resolveKernel(tree)).toMatchObject({ bzImage: path.join(tree, 'arch/x86/boot/bzImage'), dir: tree })
    const entry = fakeCacheEntry(cache, 'somekey', '2026-01-01T00:00:00Z')
    vi.stubEnv('KTSTR_KERNEL', 'somekey')
    expect(await resolveKernel()).toMatchObject({ dir: entry, origin: 'env', label: 'somekey' })
  })

  it('has no schedulersDir when there is no scx/ folder', async () => {
    const a = fakeKernelDir(path.join(root, 'a'))
    expect((await resolveKernel(a)).schedulersDir).toBeUndefined()
  })
})

describe('resolveKernel errors', () => {
  it('names --kernel, KTSTR_KERNEL and `ktstr kernel build` when nothing is found', async () => {
    const e = await resolveKernel().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(KtstrError)
    const msg = (e as Error).message
    expect(msg).toContain('--kernel')
    expect(msg).toContain('KTSTR_KERNEL')
    expect(msg).toContain('ktstr kernel build')
    expect(msg).not.toContain('\n')
  })

  it('names the missing path and where it came from', async () => {
    const missing = path.join(root, 'nope')
    await expect(resolveKernel(missing)).rejects.toThrow(`kernel ${missing} (from --kernel) does not exist`)
    vi.stubEnv('KTSTR_KERNEL', missing)
    await expect(resolveKernel()).rejects.toThrow(`kernel ${missing} (from KTSTR_KERNEL) does not exist`)
  })

  it('names a folder without a bzImage', async () => {
    fs.mkdirSync(path.join(root, 'empty'))
    await expect(resolveKernel(path.join(root, 'empty'))).rejects.toThrow(`folder ${path.join(root, 'empty')} (from --kernel) holds no bzImage`)
  })

  it('refuses a kernel without sched_ext and says how to build one', async () => {
    const a = fakeKernelDir(path.join(root, 'plain'), { config: NO_SCHED_EXT_CONFIG })
    await expect(resolveKernel(a)).rejects.toThrow(KtstrError)
    await expect(resolveKernel(a)).rejects.toThrow(/has no CONFIG_SCHED_CLASS_EXT=y .*ktstr kernel build/)
  })

  const isRoot = process.getuid?.() === 0
  if (isRoot) console.warn('skipping the unreadable-bzImage test: running as root, which can read any file')
  it.skipIf(isRoot)('names an unreadable bzImage', async () => {
    const a = fakeKernelDir(path.join(root, 'locked'))
    fs.chmodSync(path.join(a, 'bzImage'), 0)
    await expect(resolveKernel(a)).rejects.toThrow(`cannot read kernel image ${path.join(a, 'bzImage')}: EACCES`)
  })
})

describe.skipIf(!haveRealKernel)('the prebuilt guest kernel', () => {
  it('resolves with its config and scx/ folder', async () => {
    const k = await resolveKernel(REAL_KERNEL)
    expect(k.schedulersDir).toBe(path.join(REAL_KERNEL, 'scx'))
    expect(k.config.get('CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES')).toBe('y')
  })
})
