/**
 * Host paths the guest image must hold (at the same paths) for Vitest's worker to run there:
 * the import closure of Vitest's worker-side entry points, computed from the installed packages,
 * plus the project's production dependencies, which Vitest tells the worker to import natively.
 * Project code itself is not listed: it reaches the guest through Vitest's `fetch` RPC.
 */
import fs from 'node:fs'
import { isBuiltin } from 'node:module'
import path from 'node:path'

/** Vitest subpaths whose code runs in a worker. */
const VITEST_WORKER_ENTRIES = ['./worker', '.', './runtime', './environments', './runners', './suite', './snapshot']
/** Environments that live in their own package, by Vitest environment name. */
const ENVIRONMENT_PACKAGES: Record<string, string> = { jsdom: 'jsdom', 'happy-dom': 'happy-dom', 'edge-runtime': '@edge-runtime/vm' }

/** Vitest's built-in coverage providers by `coverage.provider`. */
const COVERAGE_PACKAGES: Record<string, string> = { v8: '@vitest/coverage-v8', istanbul: '@vitest/coverage-istanbul' }

const IMPORT_CONDITIONS = ['node', 'import', 'module-sync', 'default']
const REQUIRE_CONDITIONS = ['node', 'require', 'module-sync', 'default']

export interface GuestFilesInput {
  /** Vitest's `dist` folder as the host runs it (PoolOptions.distPath). */
  vitestDist: string
  /** The project's root: its package.json names the production dependencies. */
  projectRoot: string
  /** The project's test environment name (node, jsdom, ...). */
  environment?: string
  /** The coverage provider when coverage is on (`v8`, `istanbul`, `custom`). */
  coverageProvider?: string
}

export function guestFiles(input: GuestFilesInput): string[] {
  const out = new Set<string>(vitestClosure(input.vitestDist))
  for (const d of productionDependencyDirs(input.projectRoot)) out.add(d)
  const envPkg = input.environment ? ENVIRONMENT_PACKAGES[input.environment] : undefined
  const envDir = envPkg && findPackageDir(envPkg, input.projectRoot)
  if (envDir) for (const d of [envDir, ...dependencyDirs(envDir)]) out.add(d)
  // Vitest's worker imports the built-in provider by name from its own dist (a custom one comes
  // through the module runner): its worker side collects coverage in the guest.
  const coveragePkg = input.coverageProvider ? COVERAGE_PACKAGES[input.coverageProvider] : undefined
  const coverageDir = coveragePkg && findPackageDir(coveragePkg, input.vitestDist)
  if (coverageDir) for (const f of packageClosure(coverageDir, ['.'])) out.add(f)
  return [...out].sort()
}

const closures = new Map<string, string[]>()

/** Every file Vitest's worker side can load: static, dynamic (literal) and `require` imports. */
export function vitestClosure(vitestDist: string): string[] {
  const vitestRoot = path.dirname(vitestDist)
  // Vitest puts it on the worker's command line (`--require`); the guest worker loads it itself.
  return packageClosure(vitestRoot, VITEST_WORKER_ENTRIES, [path.join(vitestRoot, 'suppress-warnings.cjs')])
}

/** The files a package's `entries` (export subpaths) and `extra` files can load, with their package.json files. */
function packageClosure(pkgRoot: string, entries: readonly string[], extra: readonly string[] = []): string[] {
  const cached = closures.get(pkgRoot)
  if (cached) return cached
  const pkg = readJson(path.join(pkgRoot, 'package.json')) as PackageJson
  const files = new Set<string>()
  const queue: string[] = []
  const push = (file: string | undefined) => {
    if (!file) return
    const real = fs.realpathSync(file)
    if (files.has(real)) return
    files.add(real)
    queue.push(real)
  }
  for (const entry of entries) push(resolveExport(pkgRoot, pkg, entry, IMPORT_CONDITIONS))
  for (const file of extra) push(file)
  while (queue.length > 0) {
    const file = queue.shift()!
    if (!/\.(m|c)?js$/.test(file)) continue
    for (const { specifier, kind } of scanImports(fs.readFileSync(file, 'utf8'))) {
      push(resolveSpecifier(specifier, file, kind === 'require' ? REQUIRE_CONDITIONS : IMPORT_CONDITIONS))
    }
  }
  // package.json files decide "type" and exports maps in the guest as on the host.
  for (const f of [...files]) {
    const pj = nearestPackageJson(path.dirname(f))
    if (pj) files.add(fs.realpathSync(pj))
  }
  const list = [...files].sort()
  closures.set(pkgRoot, list)
  return list
}

/**
 * Folders of the project's production dependencies and theirs (dependencies, optional and installed
 * required peer dependencies), as node finds them from the project root.
 */
export function productionDependencyDirs(projectRoot: string): string[] {
  const pj = nearestPackageJson(projectRoot)
  if (!pj) return []
  return dependencyDirs(path.dirname(pj))
}

function dependencyDirs(fromPackageDir: string): string[] {
  const found = new Set<string>()
  const visit = (dir: string) => {
    const pkg = readJson(path.join(dir, 'package.json')) as PackageJson
    // An optional peer (e.g. a validator's `typescript` for its type tests) is the consumer's
    // choice, not something the package runs: leave it out of the guest.
    const peers = Object.keys(pkg.peerDependencies ?? {}).filter((p) => !pkg.peerDependenciesMeta?.[p]?.optional)
    const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {}), ...peers]
    for (const name of names) {
      if (TOOLCHAIN.test(name)) continue
      const depDir = findPackageDir(name, fs.realpathSync(dir))
      if (!depDir || found.has(depDir)) continue
      found.add(depDir)
      visit(depDir)
    }
  }
  visit(fromPackageDir)
  return [...found]
}

/** Not shipped as dependencies: Vitest's worker closure covers what the guest loads of these; types never load. */
const TOOLCHAIN = /^(vitest|vite|@vitest\/.*|@types\/.*)$/

export type ImportKind = 'import' | 'require'

/** Literal module specifiers in a JS file. Over-matching is harmless (unresolvable ones are dropped). */
export function scanImports(code: string): { specifier: string; kind: ImportKind }[] {
  const out: { specifier: string; kind: ImportKind }[] = []
  const patterns: [RegExp, ImportKind][] = [
    [/(?:^|[^\w$.])(?:import|export)\s*(?:type\s+)?(?:[\w$*\s{},]*?\bfrom\s*)?(['"])([^'"\n]+)\1/g, 'import'],
    [/(?:^|[^\w$.])import\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g, 'import'],
    [/(?:^|[^\w$.])require\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g, 'require'],
  ]
  for (const [re, kind] of patterns) {
    for (const m of code.matchAll(re)) out.push({ specifier: m[2]!, kind })
  }
  return out
}

interface PackageJson {
  name?: string
  main?: string
  exports?: unknown
  imports?: Record<string, unknown>
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}

function resolveSpecifier(spec: string, importer: string, conditions: string[]): string | undefined {
  if (isBuiltin(spec) || /^(node|data|http|https):/.test(spec)) return undefined
  const dir = path.dirname(importer)
  if (spec.startsWith('.') || spec.startsWith('/')) return withExtensions(path.resolve(dir, spec))
  if (spec.startsWith('#')) {
    const pj = nearestPackageJson(dir)
    if (!pj) return undefined
    const imports = (readJson(pj) as PackageJson).imports
    const target = imports && resolveMap(imports, spec, conditions)
    return target ? withExtensions(path.resolve(path.dirname(pj), target)) : undefined
  }
  const parts = spec.split('/')
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
  const sub = `.${spec.slice(name.length)}`
  const pkgDir = findPackageDir(name, dir)
  if (!pkgDir) return undefined
  return resolveExport(pkgDir, readJson(path.join(pkgDir, 'package.json')) as PackageJson, sub, conditions)
}

function resolveExport(pkgDir: string, pkg: PackageJson, sub: string, conditions: string[]): string | undefined {
  if (pkg.exports !== undefined && pkg.exports !== null) {
    const map = isSubpathMap(pkg.exports) ? (pkg.exports as Record<string, unknown>) : { '.': pkg.exports }
    const target = resolveMap(map, sub, conditions)
    return target ? withExtensions(path.resolve(pkgDir, target)) : undefined
  }
  if (sub === '.') return withExtensions(path.resolve(pkgDir, pkg.main ?? 'index.js'))
  return withExtensions(path.resolve(pkgDir, sub))
}

const isSubpathMap = (exp: unknown) => typeof exp === 'object' && exp !== null && !Array.isArray(exp) && Object.keys(exp).some((k) => k.startsWith('.'))

/** An exports/imports map lookup with `*` patterns (Node's PACKAGE_EXPORTS_RESOLVE, simplified). */
function resolveMap(map: Record<string, unknown>, key: string, conditions: string[]): string | undefined {
  if (key in map && !key.includes('*')) return resolveTarget(map[key], conditions, undefined)
  let best: { prefix: string; value: unknown; star: string } | undefined
  for (const [k, value] of Object.entries(map)) {
    const star = k.indexOf('*')
    if (star < 0) continue
    const prefix = k.slice(0, star)
    const suffix = k.slice(star + 1)
    if (key.startsWith(prefix) && key.endsWith(suffix) && key.length >= k.length - 1) {
      if (!best || prefix.length > best.prefix.length) {
        best = { prefix, value, star: key.slice(prefix.length, key.length - suffix.length) }
      }
    }
  }
  return best ? resolveTarget(best.value, conditions, best.star) : undefined
}

function resolveTarget(t: unknown, conditions: string[], star: string | undefined): string | undefined {
  if (typeof t === 'string') return star === undefined ? t : t.replaceAll('*', star)
  if (Array.isArray(t)) {
    for (const x of t) {
      const r = resolveTarget(x, conditions, star)
      if (r) return r
    }
    return undefined
  }
  if (typeof t === 'object' && t !== null) {
    for (const [cond, value] of Object.entries(t)) {
      if (!conditions.includes(cond)) continue
      const r = resolveTarget(value, conditions, star)
      if (r) return r
    }
  }
  return undefined
}

function withExtensions(p: string): string | undefined {
  for (const cand of [p, `${p}.js`, `${p}.json`, `${p}.cjs`, `${p}.mjs`, path.join(p, 'index.js')]) {
    if (fs.statSync(cand, { throwIfNoEntry: false })?.isFile()) return cand
  }
  return undefined
}

/** `node_modules/<name>` as node finds it walking up from `fromDir` (symlinks kept, as node's lookup does). */
export function findPackageDir(name: string, fromDir: string): string | undefined {
  for (let d = fromDir; ; d = path.dirname(d)) {
    if (path.basename(d) !== 'node_modules') {
      const cand = path.join(d, 'node_modules', name)
      if (fs.existsSync(path.join(cand, 'package.json'))) return cand
    }
    if (d === path.dirname(d)) return undefined
  }
}

function nearestPackageJson(dir: string): string | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    const pj = path.join(d, 'package.json')
    if (fs.existsSync(pj)) return pj
    if (d === path.dirname(d)) return undefined
  }
}

function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}
