import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { testKernel } from '../helpers/repo.js'

/** A real kernel folder (bzImage, config, scx/): the one ktstr resolves. */
export const REAL_KERNEL = testKernel ?? ''
export const haveRealKernel = fs.existsSync(path.join(REAL_KERNEL, 'bzImage')) && fs.existsSync(path.join(REAL_KERNEL, 'config'))

export function tempDir(prefix = 'ktstr-kernel-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

export const SCHED_EXT_CONFIG = 'CONFIG_SCHED_CLASS_EXT=y\nCONFIG_DEBUG_INFO_BTF=y\n# CONFIG_MODULES is not set\n'
export const NO_SCHED_EXT_CONFIG = '# CONFIG_SCHED_CLASS_EXT is not set\nCONFIG_DEBUG_INFO_BTF=y\n'

/** A kernel folder: a stand-in bzImage, a `config` and optionally executables in `scx/`. */
export function fakeKernelDir(dir: string, opts: { config?: string; schedulers?: string[] } = {}): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'bzImage'), 'not really a kernel')
  fs.writeFileSync(path.join(dir, 'config'), opts.config ?? SCHED_EXT_CONFIG)
  if (opts.schedulers) {
    fs.mkdirSync(path.join(dir, 'scx'), { recursive: true })
    for (const s of opts.schedulers) fs.writeFileSync(path.join(dir, 'scx', s), '#!/bin/sh\n', { mode: 0o755 })
  }
  return dir
}

/** A complete cache entry under `<cache>/ktstr/kernels/<key>`. */
export function fakeCacheEntry(cache: string, key: string, createdAt: string, config = SCHED_EXT_CONFIG): string {
  const dir = fakeKernelDir(path.join(cache, 'ktstr', 'kernels', key), { config, schedulers: ['scx_simple'] })
  const meta = { key, version: '6.12.117', source: 'test', createdAt, fragmentHash: 'x', schedulers: ['scx_simple'] }
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta))
  return dir
}
