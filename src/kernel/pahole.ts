import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { cacheRoot } from '../util/paths.js'
import type { Apt } from './apt.js'
import type { Runner } from './build-log.js'
import { aptInstall, canInstallPackages } from './toolchain.js'

/** Linux 6.12's documented minimum for BTF generation (Documentation/process/changes.rst). */
export const MIN_PAHOLE = 125

/** `v1.24` → 124, `v1.30` → 130 (the encoding of the kernel's scripts/pahole-version.sh). */
export function parsePaholeVersion(out: string): number | undefined {
  const m = /v?(\d+)\.(\d+)/.exec(out.trim())
  return m ? Number(m[1]) * 100 + Number(m[2]) : undefined
}

/** `1.30-1` (a Debian version) → 130. */
export function debianPaholeVersion(v: string): number | undefined {
  return parsePaholeVersion(v.replace(/^\d+:/, ''))
}

function versionOf(cmd: string): number | undefined {
  try {
    return parsePaholeVersion(execFileSync(cmd, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))
  } catch {
    return undefined
  }
}

/** trixie's pahole and the libraries it loads (it needs glibc >= 2.38, newer than bookworm's). */
export const PAHOLE_DEBS = ['pahole', 'libdw1t64', 'libelf1t64', 'libbpf1', 'libc6', 'libzstd1', 'zlib1g', 'liblzma5', 'libbz2-1.0']

/** A shell wrapper running a private pahole with its own ld.so and libraries. */
export function paholeWrapperScript(root: string, ldso: string): string {
  const libs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'].map((l) => path.join(root, l)).join(':')
  return `#!/bin/sh\nexec '${ldso}' --library-path '${libs}' '${path.join(root, 'usr/bin/pahole')}' "$@"\n`
}

function findFile(root: string, name: string): string | undefined {
  for (const entry of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.name === name && entry.isFile()) return path.join(entry.parentPath, entry.name)
  }
  return undefined
}

/**
 * A pahole >= 1.25 for PAHOLE=: the system's, a private one made earlier, the distribution's
 * (installed when this apt has a new enough one), or trixie's unpacked into the cache with a wrapper.
 */
export async function ensurePahole(run: Runner, systemApt: Apt, extraApt: () => Apt): Promise<string> {
  const sys = versionOf('pahole')
  if (sys !== undefined && sys >= MIN_PAHOLE) return 'pahole'
  const toolDir = path.join(cacheRoot(), 'tools', 'pahole')
  const wrapper = path.join(toolDir, 'pahole')
  const cached = versionOf(wrapper)
  if (cached !== undefined && cached >= MIN_PAHOLE) return wrapper

  const candidate = await systemApt.candidate(run, 'pahole').catch(() => undefined)
  if (candidate && (debianPaholeVersion(candidate) ?? 0) >= MIN_PAHOLE && canInstallPackages()) {
    await aptInstall(run, ['pahole'])
    if ((versionOf('pahole') ?? 0) >= MIN_PAHOLE) return 'pahole'
  }

  let apt: Apt
  try {
    apt = extraApt()
  } catch (e) {
    if (!(e instanceof KtstrError)) throw e
    throw new KtstrError(`BTF for sched_ext needs pahole >= 1.25 (found ${sys === undefined ? 'none' : `1.${sys % 100}`}); install it (package pahole or dwarves) and run again`)
  }
  const tmp = `${toolDir}.tmp-${process.pid}`
  fs.rmSync(tmp, { recursive: true, force: true })
  const debs = await apt.download(
    run,
    PAHOLE_DEBS.map((p) => `${p}/trixie`),
    path.join(tmp, 'debs'),
  )
  const root = path.join(tmp, 'root')
  for (const deb of debs) await run.run({ cmd: 'dpkg-deb', args: ['-x', deb, root] })
  fs.rmSync(path.join(tmp, 'debs'), { recursive: true, force: true })
  const ldso = findFile(root, 'ld-linux-x86-64.so.2')
  if (!ldso) throw new KtstrError(`trixie's libc6 did not contain ld-linux-x86-64.so.2 (see ${tmp}); install pahole >= 1.25 yourself`)
  // Paths in the wrapper are final ones: write it for toolDir, then move the folder there.
  fs.writeFileSync(path.join(tmp, 'pahole'), paholeWrapperScript(path.join(toolDir, 'root'), path.join(toolDir, path.relative(tmp, ldso))), { mode: 0o755 })
  fs.rmSync(toolDir, { recursive: true, force: true })
  fs.renameSync(tmp, toolDir)
  const got = versionOf(wrapper)
  if (got === undefined || got < MIN_PAHOLE)
    throw new KtstrError(`the private pahole at ${wrapper} does not run (version ${got ?? 'unknown'}); install pahole >= 1.25 and run again`)
  return wrapper
}
