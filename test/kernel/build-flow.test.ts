import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { stripVTControlCharacters } from 'node:util'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { kernelCommand } from '../../src/cli/kernel-command.js'
import { BuildFailure, buildKernel } from '../../src/kernel/build.js'
import { keyLockPath, listCachedKernels } from '../../src/kernel/cache.js'
import type { BuildEvent } from '../../src/kernel/progress.js'
import { resolveScheduler } from '../../src/kernel/schedulers.js'
import { repoRoot } from '../helpers/repo.js'
import { tempDir } from './helpers.js'

// The whole build flow against a stand-in kernel tree whose Makefiles write fake results, and
// stand-in tools (pahole, clang, dpkg-query) first on PATH: nothing is compiled or installed.

const haveMake = spawnSync('make', ['--version']).status === 0
const LOCK_JS = path.join(repoRoot, 'dist', 'src', 'util', 'file-lock.js')
const distBuilt = fs.existsSync(LOCK_JS)
if (!distBuilt) console.warn(`skipping the cross-process build lock test: ${LOCK_JS} missing (run npm run build)`)
// Another process holding a kernel key's lock, as a second `ktstr kernel build` would.
const HOLDER = `
const { FileLock } = await import(process.env.LOCK_JS)
FileLock.tryAcquire(process.env.LOCK, 'exclusive') ? console.log('locked') : process.exit(1)
setInterval(() => {}, 1000)
`
if (!haveMake) console.warn('skipping the build-flow tests: make is not installed')

const TREE_MAKEFILE = `VERSION = 6
PATCHLEVEL = 13
SUBLEVEL = 0
EXTRAVERSION =
tinyconfig:
\t@test -n "$(PAHOLE)" || { echo "PAHOLE= missing" >&2; exit 1; }
\t@echo "  GEN     Makefile"; echo "# tiny" > $(O)/.config
\t@if [ -n "$(FAIL_TINY)" ]; then for i in $$(seq 1 30); do echo "noise $$i"; done; echo "tinyconfig exploded" >&2; exit 1; fi
olddefconfig:
\t@test -n "$(PAHOLE)"
\t@if [ -n "$(DROP_BTF)" ]; then sed -i -e 's/^CONFIG_DEBUG_INFO_BTF=y/# CONFIG_DEBUG_INFO_BTF is not set/' -e 's/^CONFIG_SCHED_CLASS_EXT=y//' $(O)/.config; fi
bzImage:
\t@test -n "$(PAHOLE)"
\t@mkdir -p $(O)/arch/x86/boot && echo "  CC      kernel/sched/ext.o" && echo kernel > $(O)/arch/x86/boot/bzImage
`
const SCX_MAKEFILE = `all:
\t@test -n "$(CLANG)" && test -n "$(LLVM_STRIP)" && test -n "$(VMLINUX_BTF)"
\t@mkdir -p $(O)/build/bin && for s in scx_simple scx_qmap; do printf '#!/bin/sh\\n' > $(O)/build/bin/$$s; chmod +x $(O)/build/bin/$$s; done
`
// merge_config.sh -m -O OUT BASE FRAGMENT: append the fragment to the base config.
const MERGE = '#!/bin/sh\ncat "$5" >> "$4"\n'

let root: string
let tree: string
beforeEach(() => {
  root = tempDir()
  tree = path.join(root, 'linux')
  fs.mkdirSync(path.join(tree, 'tools', 'sched_ext'), { recursive: true })
  fs.mkdirSync(path.join(tree, 'scripts', 'kconfig'), { recursive: true })
  fs.writeFileSync(path.join(tree, 'Makefile'), TREE_MAKEFILE)
  fs.writeFileSync(path.join(tree, 'Kconfig'), '')
  fs.writeFileSync(path.join(tree, 'tools', 'sched_ext', 'Makefile'), SCX_MAKEFILE)
  fs.writeFileSync(path.join(tree, 'scripts', 'kconfig', 'merge_config.sh'), MERGE)
  const bin = path.join(root, 'bin')
  fs.mkdirSync(bin)
  const tool = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  tool('pahole', 'echo v1.30')
  tool('clang-99', 'exit 0')
  tool('llvm-strip-99', 'exit 0')
  tool('dpkg-query', 'for a in "$@"; do case "$a" in -*) ;; *) echo "$a installed";; esac; done')
  vi.stubEnv('PATH', `${bin}:${process.env.PATH}`)
  vi.stubEnv('XDG_CACHE_HOME', path.join(root, 'cache'))
  vi.stubEnv('KTSTR_KERNEL', '')
})
afterEach(() => {
  vi.unstubAllEnvs()
  vi.restoreAllMocks()
  fs.rmSync(root, { recursive: true, force: true })
})

describe.skipIf(!haveMake)('buildKernel flow (stand-in tree)', () => {
  it('configures, builds, installs atomically and resolves the result', async () => {
    const events: BuildEvent[] = []
    const k = await buildKernel({ source: tree, jobs: 3, onProgress: (e) => events.push(e) })
    const phases = events.filter((e) => e.type === 'phase-end').map((e) => (e as { phase: string }).phase)
    expect(phases).toEqual(['prepare', 'toolchain', 'pahole', 'configure', 'bzImage', 'schedulers', 'install'])
    expect(events).toContainEqual({ type: 'output', line: '  CC      kernel/sched/ext.o' })
    expect(k.origin).toBe('cache')
    expect(k.label).toMatch(/^6\.13\.0-local-[0-9a-f]{10}$/)
    expect(fs.readFileSync(k.bzImage, 'utf8')).toBe('kernel\n')
    expect(k.config.get('CONFIG_SCHED_CLASS_EXT')).toBe('y')
    expect(resolveScheduler(k, 'scx_qmap').opsName).toBe('qmap')
    const meta = JSON.parse(fs.readFileSync(path.join(k.dir, 'meta.json'), 'utf8'))
    expect(meta).toMatchObject({ key: k.label, version: '6.13.0', source: `local:${tree}`, schedulers: ['scx_qmap', 'scx_simple'] })
    expect(Object.keys(meta.timings)).toEqual(['prepare', 'toolchain', 'pahole', 'configure', 'bzImage', 'schedulers'])
    expect(fs.readdirSync(path.dirname(k.dir))).toEqual([k.label]) // no leftover .tmp-/.old- folders
    expect(fs.existsSync(path.join(tree, '.config'))).toBe(false) // the tree itself is untouched (O= build)
    const log = fs.readFileSync(meta.log, 'utf8')
    expect(log).toContain(`O=${path.join(root, 'cache', 'ktstr', 'build', k.label, 'kbuild')} PAHOLE=pahole -j3 bzImage`)

    // forced rebuild replaces the entry in place
    const again = await buildKernel({ source: tree, force: true })
    expect(again.dir).toBe(k.dir)
    expect(listCachedKernels()).toHaveLength(1)
  })

  it('two builds of one key at once: one builds, the other waits for it and reuses the entry', async () => {
    const events: BuildEvent[][] = [[], []]
    const [a, b] = await Promise.all(events.map((ev) => buildKernel({ source: tree, onProgress: (e) => ev.push(e) })))
    expect(a.dir).toBe(b.dir)
    const installed = events.map((ev) => ev.some((e) => e.type === 'phase-end' && e.phase === 'install'))
    expect(installed.sort()).toEqual([false, true])
    const waited = events.find((ev) => !ev.some((e) => e.type === 'phase-end' && e.phase === 'install'))!
    const notes = waited.filter((e) => e.type === 'note').map((e) => (e as { message: string }).message)
    expect(notes).toContainEqual(expect.stringMatching(/^another build of kernel \S+ is running \(pid \d+\); waiting for it to finish/))
    expect(notes).toContainEqual(expect.stringMatching(/was built meanwhile by the other build/))
    expect(waited.some((e) => e.type === 'phase-start' && e.phase === 'configure')).toBe(false)
    expect(listCachedKernels()).toHaveLength(1)
  })

  it.skipIf(!distBuilt)('waits while another process holds the key, and goes on when that process is killed', { timeout: 60_000 }, async () => {
    const k = await buildKernel({ source: tree })
    const holder = spawn(process.execPath, ['--input-type=module', '-e', HOLDER], {
      env: { ...process.env, LOCK_JS, LOCK: keyLockPath(k.label) },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()))
    const events: BuildEvent[] = []
    let done = false
    const build = buildKernel({ source: tree, force: true, onProgress: (e) => events.push(e) }).finally(() => (done = true))
    while (!events.some((e) => e.type === 'note')) await new Promise((r) => setTimeout(r, 20))
    expect(events.find((e) => e.type === 'note')).toEqual({
      type: 'note',
      message: `another build of kernel ${k.label} is running (pid ${holder.pid}); waiting for it to finish (stop it to build here instead)`,
    })
    expect(done).toBe(false)
    expect(events.some((e) => e.type === 'phase-start' && e.phase === 'configure')).toBe(false)
    holder.kill('SIGKILL') // a dead holder's lock goes with it
    const again = await build
    expect(again.dir).toBe(k.dir)
    expect(events.some((e) => e.type === 'phase-end' && e.phase === 'install')).toBe(true)
  })

  it('builds again when the cached bzImage is truncated', async () => {
    const k = await buildKernel({ source: tree })
    fs.truncateSync(k.bzImage, 2)
    expect(listCachedKernels()).toEqual([])
    const events: BuildEvent[] = []
    const again = await buildKernel({ source: tree, onProgress: (e) => events.push(e) })
    expect(events.some((e) => e.type === 'phase-end' && e.phase === 'install')).toBe(true)
    expect(fs.readFileSync(again.bzImage, 'utf8')).toBe('kernel\n')
    expect(JSON.parse(fs.readFileSync(path.join(again.dir, 'meta.json'), 'utf8')).bzImageBytes).toBe(7)
  })

  it('fails when olddefconfig drops required options, naming them and the log', async () => {
    vi.stubEnv('DROP_BTF', '1')
    const e = (await buildKernel({ source: tree }).catch((x: unknown) => x)) as BuildFailure
    expect(e).toBeInstanceOf(BuildFailure)
    expect(e.phase).toBe('configure')
    expect(e.message).toContain('SCHED_CLASS_EXT, DEBUG_INFO_BTF')
    expect(e.message).toContain(e.logPath)
    expect(listCachedKernels()).toEqual([])
  })

  it('`ktstr kernel build` prints the phase, the log path and the last 20 log lines on failure', async () => {
    vi.stubEnv('FAIL_TINY', '1')
    let err = ''
    // picocolors decides on colour when it is first imported (CI=true turns it on): strip it here.
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += stripVTControlCharacters(String(s))), true))
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
    expect(await kernelCommand(['build', '--source', tree])).toBe(1)
    const lines = err.trimEnd().split('\n')
    const last = lines.at(-1)!
    expect(last).toMatch(/^ktstr: kernel build failed during configure: `make .* tinyconfig` exited with 2 \(full log: .*\.log\)$/)
    const header = lines.findIndex((l) => /^--- last 20 lines of .*\.log ---$/.test(l))
    expect(header).toBeGreaterThan(-1)
    const tail = lines.slice(header + 1, -1)
    expect(tail).toHaveLength(20)
    expect(tail.join('\n')).toContain('tinyconfig exploded')
    expect(tail.join('\n')).toContain('noise 30')
  })
})
