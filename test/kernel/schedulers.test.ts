import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { openKernel, resolveKernel } from '../../src/kernel/resolve.js'
import { listSchedulers, resolveScheduler } from '../../src/kernel/schedulers.js'
import { KtstrError } from '../../src/util/errors.js'
import { fakeKernelDir, haveRealKernel, REAL_KERNEL, tempDir } from './helpers.js'

let root: string
beforeEach(() => {
  root = tempDir()
})
afterEach(() => {
  vi.restoreAllMocks()
  fs.rmSync(root, { recursive: true, force: true })
})

function kernelWith(schedulers: string[]) {
  const dir = fakeKernelDir(path.join(root, 'k'), { schedulers })
  return openKernel(path.join(dir, 'bzImage'), dir, 'option', dir)
}

describe('resolveScheduler', () => {
  it('resolves names in scx/ with the ops name sysfs shows', () => {
    const k = kernelWith(['scx_simple', 'scx_qmap', 'scx_central', 'scx_flatcg', 'my_sched'])
    expect(resolveScheduler(k, 'scx_simple')).toEqual({ path: path.join(k.dir, 'scx', 'scx_simple'), name: 'scx_simple', opsName: 'simple' })
    expect(resolveScheduler(k, 'scx_qmap').opsName).toBe('qmap')
    expect(resolveScheduler(k, 'my_sched')).toMatchObject({ name: 'my_sched', opsName: 'my_sched' })
    expect(listSchedulers(k)).toEqual(['my_sched', 'scx_central', 'scx_flatcg', 'scx_qmap', 'scx_simple'])
  })

  it('ignores files that are not executable', () => {
    const k = kernelWith(['scx_simple'])
    fs.writeFileSync(path.join(k.dir, 'scx', 'README'), 'text', { mode: 0o644 })
    fs.mkdirSync(path.join(k.dir, 'scx', 'subdir'))
    expect(listSchedulers(k)).toEqual(['scx_simple'])
  })

  it('takes anything with a slash as a host path (relative to cwd), without an ops name', () => {
    const k = kernelWith([])
    const bin = path.join(root, 'bin', 'scx_mine')
    fs.mkdirSync(path.dirname(bin))
    fs.writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 })
    expect(resolveScheduler(k, bin)).toEqual({ path: bin, name: 'scx_mine' })
    vi.spyOn(process, 'cwd').mockReturnValue(root)
    expect(resolveScheduler(k, './bin/scx_mine').path).toBe(bin)
  })

  it('refuses a missing or non-executable path, naming it', () => {
    const k = kernelWith([])
    const missing = path.join(root, 'nope')
    expect(() => resolveScheduler(k, missing)).toThrow(`scheduler ${missing} does not exist`)
    const plain = path.join(root, 'plain')
    fs.writeFileSync(plain, 'x', { mode: 0o644 })
    expect(() => resolveScheduler(k, plain)).toThrow(/is not an executable file/)
    expect(() => resolveScheduler(k, root)).toThrow(/is not an executable file/)
  })

  it('lists the available names for an unknown one and says a path works too', () => {
    const k = kernelWith(['scx_simple', 'scx_qmap'])
    let err: unknown
    try {
      resolveScheduler(k, 'scx_rusty')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(KtstrError)
    const msg = (err as Error).message
    expect(msg).toContain('unknown scheduler "scx_rusty"')
    expect(msg).toContain('scx_qmap, scx_simple')
    expect(msg).toContain('a path')
  })

  it('says when a kernel has no schedulers at all', () => {
    const dir = fakeKernelDir(path.join(root, 'bare'))
    const k = openKernel(path.join(dir, 'bzImage'), dir, 'option', dir)
    expect(listSchedulers(k)).toEqual([])
    expect(() => resolveScheduler(k, 'scx_simple')).toThrow(/comes with no schedulers/)
  })

  it.skipIf(!haveRealKernel)('finds the four example schedulers of the prebuilt guest', async () => {
    const k = await resolveKernel(REAL_KERNEL)
    expect(listSchedulers(k)).toEqual(['scx_central', 'scx_flatcg', 'scx_qmap', 'scx_simple'])
    expect(resolveScheduler(k, 'scx_central')).toMatchObject({ path: path.join(REAL_KERNEL, 'scx', 'scx_central'), opsName: 'central' })
  })
})
