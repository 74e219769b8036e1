import { stripVTControlCharacters } from 'node:util'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { kernelCommand } from '../../src/cli/kernel-command.js'
import { BuildFailure, buildKernel } from '../../src/kernel/build.js'
import { listCachedKernels } from '../../src/kernel/cache.js'
import type { BuildEvent } from '../../src/kernel/progress.js'
import { resolveScheduler } from '../../src/kernel/schedulers.js'
import { tempDir } from './helpers.js'

// The whole build flow against a stand-in kernel tree whose Makefiles write fake results, and
// stand-in tools (pahole, clang, dpkg-query) first on PATH: nothing is compiled or installed.

const haveMake = spawnSync('make', ['--version']).status === 0
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
