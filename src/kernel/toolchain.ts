import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import type { Apt } from './apt.js'
import type { Runner } from './build-log.js'

/** Debian packages a kernel + tools/sched_ext build needs (clang is picked separately, see findClang). */
export const BUILD_PACKAGES = ['build-essential', 'flex', 'bison', 'bc', 'libelf-dev', 'libssl-dev', 'libzstd-dev', 'zlib1g-dev', 'cpio', 'xz-utils', 'python3']
/** tools/sched_ext needs clang >= 16 for its BPF programs; clang-16 is bookworm's newest. */
export const CLANG_PACKAGES = ['clang-16', 'llvm-16']
export const MIN_CLANG = 16

/** Commands standing in for BUILD_PACKAGES on hosts without dpkg (headers and libraries cannot be checked that way). */
const BUILD_COMMANDS = ['gcc', 'make', 'flex', 'bison', 'bc', 'cpio', 'xz', 'python3']

/** Packages of `pkgs` that dpkg does not list as installed. */
export function missingPackages(pkgs: string[]): string[] {
  if (!onPath('dpkg-query')) return BUILD_COMMANDS.filter((c) => !onPath(c))
  let out = ''
  try {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${field} format
    out = execFileSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...pkgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '') // exits 1 when some package is unknown
  }
  const installed = new Set(
    out
      .split('\n')
      .filter((l) => l.endsWith(' installed'))
      .map((l) => l.split(' ')[0]!.replace(/:.*$/, '')),
  )
  return pkgs.filter((p) => !installed.has(p))
}

function executablesOnPath(): Map<string, string> {
  const found = new Map<string, string>()
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    let names: string[] = []
    try {
      names = fs.readdirSync(dir)
    } catch {
      continue
    }
    for (const n of names) if (!found.has(n) && /^(clang|llvm-strip)(-\d+)?$/.test(n)) found.set(n, path.join(dir, n))
  }
  return found
}

/** The major version in `clang --version` output. */
export function parseClangMajor(versionOutput: string): number | undefined {
  const m = /clang version (\d+)\./.exec(versionOutput)
  return m ? Number(m[1]) : undefined
}

export interface Clang {
  clang: string
  llvmStrip: string
}

/** The newest clang >= 16 on PATH (`clang-N` or plain `clang`), with its llvm-strip. */
export function findClang(): Clang | undefined {
  const exes = executablesOnPath()
  const versioned = [...exes.keys()]
    .map((n) => /^clang-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) >= MIN_CLANG)
    .sort((a, b) => Number(b[1]) - Number(a[1]))
  for (const m of versioned) {
    const strip = exes.get(`llvm-strip-${m[1]}`) ?? exes.get('llvm-strip')
    if (strip) return { clang: exes.get(m[0])!, llvmStrip: strip }
  }
  const plain = exes.get('clang')
  const strip = exes.get('llvm-strip')
  if (plain && strip) {
    try {
      const major = parseClangMajor(execFileSync(plain, ['--version'], { encoding: 'utf8' }))
      if (major !== undefined && major >= MIN_CLANG) return { clang: plain, llvmStrip: strip }
    } catch {
      // not usable
    }
  }
  return undefined
}

export function canInstallPackages(): boolean {
  return process.getuid?.() === 0 && onPath('apt-get')
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => fs.existsSync(path.join(d, name)))
}

export function installHint(pkgs: string[]): string {
  return `kernel build needs these packages: ${pkgs.join(' ')}; install them (as root: apt-get install -y ${pkgs.join(' ')}) and run again`
}

/** apt-get install, with one `apt-get update` and retry when the package lists are stale. */
export async function aptInstall(run: Runner, pkgs: string[]): Promise<void> {
  const install = { cmd: 'apt-get', args: ['install', '-y', '-q', '--no-install-recommends', ...pkgs] }
  try {
    await run.run(install)
  } catch {
    await run.run({ cmd: 'apt-get', args: ['-q', 'update'] })
    await run.run(install)
  }
}

/** Make sure compilers and libraries are installed; returns the clang to build the schedulers with. */
export async function ensureToolchain(run: Runner, systemApt: Apt): Promise<Clang> {
  const missing = missingPackages(BUILD_PACKAGES)
  let clang = findClang()
  if (!missing.length && clang) return clang
  if (!clang) {
    const canApt = canInstallPackages()
    const has16 = canApt ? Boolean(await systemApt.candidate(run, CLANG_PACKAGES[0]!).catch(() => undefined)) : true
    missing.push(...(has16 ? CLANG_PACKAGES : ['clang', 'llvm']))
  }
  if (!canInstallPackages()) throw new KtstrError(installHint(missing))
  await aptInstall(run, missing)
  clang = findClang()
  if (!clang) throw new KtstrError(`no clang >= ${MIN_CLANG} with llvm-strip found after installing ${missing.join(' ')}; install one and run again`)
  return clang
}
