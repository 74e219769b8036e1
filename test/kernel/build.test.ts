import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { buildKernel, fragmentPath } from '../../src/kernel/build.js'
import { buildKey } from '../../src/kernel/build-plan.js'
import { localSourceIdentity } from '../../src/kernel/local-source.js'
import type { BuildEvent } from '../../src/kernel/progress.js'
import { KtstrError } from '../../src/util/errors.js'
import { fakeCacheEntry, tempDir } from './helpers.js'

let root: string
let cache: string
beforeEach(() => {
  root = tempDir()
  cache = path.join(root, 'cache')
  vi.stubEnv('XDG_CACHE_HOME', cache)
})
afterEach(() => {
  vi.unstubAllEnvs()
  fs.rmSync(root, { recursive: true, force: true })
})

function fakeTree(dir: string): string {
  fs.mkdirSync(path.join(dir, 'tools', 'sched_ext'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'Makefile'), 'VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 2\nEXTRAVERSION =\n')
  fs.writeFileSync(path.join(dir, 'Kconfig'), '')
  return dir
}

describe('buildKernel (no compiling)', () => {
  it('reuses a cached build of the same source and fragment unless forced', async () => {
    const tree = fakeTree(path.join(root, 'linux'))
    const key = buildKey('6.13.2', 'local', localSourceIdentity(tree), fs.readFileSync(fragmentPath(), 'utf8'))
    expect(key).toMatch(/^6\.13\.2-local-[0-9a-f]{10}$/)
    const entry = fakeCacheEntry(cache, key, '2026-01-01T00:00:00Z')
    const events: BuildEvent[] = []
    const k = await buildKernel({ source: tree, onProgress: (e) => events.push(e) })
    expect(k).toMatchObject({ dir: entry, origin: 'cache', label: key })
    expect(events.map((e) => e.type)).toEqual(['phase-start', 'phase-end', 'note'])
    expect(events.at(-1)).toMatchObject({ message: expect.stringContaining('--force') })
    const logs = fs.readdirSync(path.join(cache, 'ktstr', 'logs'))
    expect(logs).toHaveLength(1)
    expect(fs.readFileSync(path.join(cache, 'ktstr', 'logs', logs[0]!), 'utf8')).toContain(`key ${key}`)
  })

  it('refuses a tree that is not a kernel, or one configured in place, with a one-line KtstrError', async () => {
    await expect(buildKernel({ source: root })).rejects.toThrow(`${root} is not a kernel source tree`)
    const tree = fakeTree(path.join(root, 'linux'))
    fs.writeFileSync(path.join(tree, '.config'), 'CONFIG_X=y\n')
    const e = await buildKernel({ source: tree }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(KtstrError)
    expect((e as Error).message).toContain('make mrproper')
    fs.rmSync(path.join(tree, 'tools'), { recursive: true })
    fs.rmSync(path.join(tree, '.config'))
    await expect(buildKernel({ source: tree })).rejects.toThrow(/no tools\/sched_ext; sched_ext needs Linux 6.12 or newer/)
  })

  it('keys a plain tree by its path', () => {
    const tree = fakeTree(path.join(root, 'linux'))
    expect(localSourceIdentity(tree)).toBe(`local:${tree}`)
  })

  const haveGit = spawnSync('git', ['--version']).status === 0
  if (!haveGit) console.warn('skipping the git-identity test: git is not installed')
  it.skipIf(!haveGit)('keys a git tree by commit and by its uncommitted changes', () => {
    const tree = fakeTree(path.join(root, 'linux'))
    const git = (...args: string[]) => spawnSync('git', ['-C', tree, '-c', 'user.email=t@t', '-c', 'user.name=t', ...args], { encoding: 'utf8' }).stdout.trim()
    git('init', '-q')
    git('add', '.')
    git('commit', '-qm', 'x')
    const head = git('rev-parse', 'HEAD')
    expect(localSourceIdentity(tree)).toBe(`local:${tree}@${head}`)
    fs.appendFileSync(path.join(tree, 'Kconfig'), 'one\n')
    const dirty1 = localSourceIdentity(tree)
    expect(dirty1).toMatch(new RegExp(`^local:${tree}@${head}\\+[0-9a-f]{10}$`))
    fs.appendFileSync(path.join(tree, 'Kconfig'), 'two\n')
    expect(localSourceIdentity(tree)).not.toBe(dirty1)
  })
})
