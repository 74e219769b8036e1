import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { guestFiles, productionDependencyDirs, scanImports, vitestClosure } from '../../plugin/guest-files.js'
import { runtimeModules, snapshotEnvironmentPath } from '../../plugin/pool.js'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const NM = path.join(REPO, 'node_modules')
const real = (p: string) => fs.realpathSync(path.join(NM, p))

describe('vitestClosure', () => {
  const files = vitestClosure(path.join(NM, 'vitest', 'dist'))

  it('holds the worker entry points and what they import, statically, dynamically and by require', () => {
    expect(files).toContain(real('vitest/dist/worker.js'))
    expect(files).toContain(real('vitest/dist/index.js'))
    expect(files).toContain(real('vitest/suppress-warnings.cjs'))
    expect(files).toContain(real('vite/dist/node/module-runner.js'))
    // dynamic import('./node.*.js') of the default snapshot environment
    expect(files.some((f) => /vitest\/dist\/chunks\/node\.[\w-]+\.js$/.test(f))).toBe(true)
    // CJS require('./branding') inside expect-type
    expect(files).toContain(real('expect-type/dist/branding.js'))
    // ESM build picked through the exports map's import condition
    expect(files).toContain(real('magic-string/dist/magic-string.es.mjs'))
    expect(files).toContain(real('chai/package.json'))
  })

  it("leaves out Vitest's host side and Vite's bundler", () => {
    expect(files).not.toContain(real('vitest/dist/node.js'))
    expect(files.some((f) => f.includes('/vitest/dist/chunks/cli-api.'))).toBe(false)
    expect(files.some((f) => f.includes('/vite/dist/node/chunks/'))).toBe(false)
    expect(files.some((f) => f.includes('/rollup/') || f.includes('/esbuild/'))).toBe(false)
    for (const f of files) expect(fs.statSync(f).isFile()).toBe(true)
  })
})

describe('productionDependencyDirs', () => {
  it('lists dependencies and theirs, not dev dependencies', () => {
    const dirs = productionDependencyDirs(REPO)
    expect(dirs).toContain(path.join(NM, 'koffi'))
    expect(dirs).toContain(path.join(NM, 'picocolors'))
    expect(dirs).toContain(path.join(NM, 'valibot'))
    // valibot's optional peer; a dev dependency here, and never needed in the guest.
    expect(dirs).not.toContain(path.join(NM, 'typescript'))
    expect(dirs).not.toContain(path.join(NM, 'vitest')) // a peer here; the worker closure covers it
  })

  it('the snapshot environment is a runtime module: in every guest image, and imported natively there', () => {
    const file = snapshotEnvironmentPath()
    expect(file.startsWith(path.join(REPO, 'dist', 'runtime') + path.sep)).toBe(true) // the base image holds dist/runtime
    expect(runtimeModules().test(file)).toBe(true) // Vite leaves it external
    expect(fs.existsSync(file)).toBe(true)
  })
})

describe('coverage in the guest', () => {
  const vitestDist = path.join(NM, 'vitest', 'dist')

  it("ships the coverage provider's worker side when coverage is on, not its host side", () => {
    const all = guestFiles({ vitestDist, projectRoot: REPO, coverageProvider: 'v8' })
    expect(all).toContain(real('@vitest/coverage-v8/dist/index.js'))
    expect(all).toContain(real('@vitest/coverage-v8/package.json'))
    expect(all).toContain(real('std-env/package.json'))
    // The provider proper (istanbul reports, source maps) runs on the host only.
    expect(all).not.toContain(real('@vitest/coverage-v8/dist/provider.js'))
    expect(all.some((f) => f.includes('/istanbul-reports/'))).toBe(false)
  })

  it('ships no provider without coverage, nor for a custom provider (that one comes through the module runner)', () => {
    for (const coverageProvider of [undefined, 'custom']) {
      const all = guestFiles({ vitestDist, projectRoot: REPO, ...(coverageProvider ? { coverageProvider } : {}) })
      expect(all.some((f) => f.includes('/@vitest/coverage-v8/'))).toBe(false)
    }
  })
})

describe('scanImports', () => {
  it('finds literal specifiers of every import form', () => {
    const code = [
      "import { a } from './a.js'",
      "import './side.js'",
      "export * from 'pkg/sub'",
      'import {\n  b,\n  c as d\n} from "multi"',
      "const m = await import('./lazy.js')",
      "const r = require('./cjs')",
      'const dyn = import(name)',
    ].join('\n')
    expect(scanImports(code).map((i) => `${i.kind}:${i.specifier}`)).toEqual([
      'import:./a.js',
      'import:./side.js',
      'import:pkg/sub',
      'import:multi',
      'import:./lazy.js',
      'require:./cjs',
    ])
  })
})
