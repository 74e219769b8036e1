// The guest init is one file (runtime/init/build-init.ts): the kernel starts the bundle, which
// imports nothing from disk at start-up but node's own modules; the test API and Vitest's worker
// stay separate, imported when a run needs them. (Real guests run it in test/vm and test/plugin.)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { INIT_SCRIPT_IN_PACKAGE } from '../../src/image/guest-paths.js'
import { packageRoot } from '../../src/util/paths.js'

const built = path.join(packageRoot(), INIT_SCRIPT_IN_PACKAGE)
const dist = path.join(packageRoot(), 'dist', 'runtime', 'init')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-build-init-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** `import … from 'x'` and `import 'x'` at the top of a module. */
const staticImports = (src: string) => [...src.matchAll(/^import\s+(?:[^'";]*?\sfrom\s+)?'([^']+)'/gm)].map((m) => m[1])
const dynamicImports = (src: string) => [...src.matchAll(/\bimport\(([^)]*)\)/g)].map((m) => m[1])

describe('the guest init bundle', () => {
  it.skipIf(!fs.existsSync(built))('is what the base image starts, importing only node modules up front', () => {
    expect(INIT_SCRIPT_IN_PACKAGE).toBe('dist/runtime/init/init.js')
    const src = fs.readFileSync(built, 'utf8')
    const imports = staticImports(src)
    expect(imports.length).toBeGreaterThan(3)
    expect(imports.filter((s) => !s.startsWith('node:'))).toEqual([])
    // The template's test API, and Vitest's worker (a path from the run spec).
    expect(dynamicImports(src).sort()).toEqual(["'../index.js'", 'mode.workerEntry', 'workerEntry'])
    // main()'s modules are in it: the channel, the unpacker, the mounts.
    for (const name of ['portStream', 'unpackCpio', 'mountAll', 'awaitRunArchive']) expect(src).toContain(`function ${name}(`)
  })

  it.skipIf(!fs.existsSync(path.join(dist, 'main.js')))('builds from the compiled init next to it', async () => {
    // A copy of the compiled tree, so the build writes its bundle there and not into dist.
    const root = path.join(tmp, 'dist')
    fs.cpSync(path.join(packageRoot(), 'dist'), root, { recursive: true, filter: (p) => !p.endsWith('.map') })
    const { buildInit } = await import('../../runtime/init/build-init.js')
    const copyInit = path.join(root, 'runtime', 'init')
    fs.rmSync(path.join(copyInit, 'init.js'), { force: true })
    const out = await buildInit(copyInit)
    expect(out).toBe(path.join(copyInit, 'init.js'))
    expect(staticImports(fs.readFileSync(out, 'utf8')).every((s) => s.startsWith('node:'))).toBe(true)
  })
})
