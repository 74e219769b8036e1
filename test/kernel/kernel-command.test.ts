import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { kernelCommand } from '../../src/cli/kernel-command.js'
import { fakeCacheEntry, fakeKernelDir, tempDir } from './helpers.js'

let root: string
let cache: string
let out: string
let err: string
beforeEach(() => {
  root = tempDir()
  cache = path.join(root, 'cache')
  vi.stubEnv('XDG_CACHE_HOME', cache)
  vi.stubEnv('KTSTR_KERNEL', '')
  vi.stubEnv('NO_COLOR', '1')
  out = err = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true))
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true))
})
afterEach(() => {
  vi.restoreAllMocks()
  vi.unstubAllEnvs()
  fs.rmSync(root, { recursive: true, force: true })
})

describe('ktstr kernel', () => {
  it('list shows entries newest first and marks the one resolution picks', async () => {
    fakeCacheEntry(cache, '6.12.117-debian-aaaaaaaaaa', '2026-01-01T10:00:00Z')
    fakeCacheEntry(cache, '6.12.117-debian-bbbbbbbbbb', '2026-02-01T10:00:00Z')
    expect(await kernelCommand(['list'])).toBe(0)
    const lines = out.trim().split('\n')
    expect(lines[0]).toMatch(/KEY\s+VERSION\s+BUILT\s+SCHEDULERS/)
    expect(lines[1]).toMatch(/^\* {2}6\.12\.117-debian-bbbbbbbbbb {2}6\.12\.117 {2}2026-02-01 \d\d:\d\d {2}scx_simple$/)
    expect(lines[2]).toMatch(/^ {3}6\.12\.117-debian-aaaaaaaaaa/)
  })

  it('list marks nothing when KTSTR_KERNEL overrides the cache', async () => {
    fakeCacheEntry(cache, 'k1', '2026-01-01T10:00:00Z')
    vi.stubEnv('KTSTR_KERNEL', '/some/kernel')
    expect(await kernelCommand(['list'])).toBe(0)
    expect(out).not.toMatch(/^\*/m)
    expect(out).toContain('KTSTR_KERNEL=/some/kernel is set')
  })

  it('list says how to build when the cache is empty', async () => {
    expect(await kernelCommand(['list'])).toBe(0)
    expect(out).toContain('ktstr kernel build')
  })

  it('path prints the resolved bzImage', async () => {
    const k = fakeKernelDir(path.join(root, 'k'))
    expect(await kernelCommand(['path', '--kernel', k])).toBe(0)
    expect(out).toBe(`${path.join(k, 'bzImage')}\n`)
  })

  it('reports user errors in one line and returns 1', async () => {
    expect(await kernelCommand(['path'])).toBe(1)
    expect(err.trim().split('\n')).toHaveLength(1)
    expect(err).toContain('KTSTR_KERNEL')
    err = ''
    expect(await kernelCommand(['build', '--jobs', '0'])).toBe(1)
    expect(err).toContain('--jobs must be a positive integer')
    err = ''
    expect(await kernelCommand(['list', '--bogus'])).toBe(1)
    expect(err).toContain('ktstr kernel --help')
    expect(await kernelCommand(['frob'])).toBe(1)
  })

  it('prints usage', async () => {
    expect(await kernelCommand(['--help'])).toBe(0)
    expect(out).toContain('build [--source DIR|debian]')
    expect(await kernelCommand([])).toBe(2)
  })
})
