import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { kernelVersionFromMakefile, sha256 } from './build-plan.js'

/** Check that `dir` is a kernel tree ktstr can build out of tree; returns its version. */
export function checkLocalTree(dir: string): string {
  const makefile = path.join(dir, 'Makefile')
  if (!fs.existsSync(makefile) || !fs.existsSync(path.join(dir, 'Kconfig')))
    throw new KtstrError(`${dir} is not a kernel source tree (no Makefile and Kconfig); pass a Linux tree or --source debian`)
  const version = kernelVersionFromMakefile(fs.readFileSync(makefile, 'utf8'))
  if (!version) throw new KtstrError(`cannot read the kernel version from ${makefile}`)
  if (!fs.existsSync(path.join(dir, 'tools', 'sched_ext'))) throw new KtstrError(`kernel tree ${dir} (${version}) has no tools/sched_ext; sched_ext needs Linux 6.12 or newer`)
  // Kbuild refuses O= builds of a tree that was configured in place (top-level Makefile, "source tree is not clean").
  if (fs.existsSync(path.join(dir, '.config')) || fs.existsSync(path.join(dir, 'include', 'config')))
    throw new KtstrError(`kernel tree ${dir} was configured in place; ktstr builds out of tree, which needs a clean tree: run \`make mrproper\` there or pass a clean copy`)
  return version
}

function git(dir: string, ...args: string[]): string | undefined {
  const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8', maxBuffer: 512 << 20, stdio: ['ignore', 'pipe', 'ignore'] })
  return r.status === 0 ? r.stdout : undefined
}

/** `local:<dir>@<commit>[+<hash of uncommitted changes>]`, or `local:<dir>` outside git. */
export function localSourceIdentity(dir: string): string {
  const head = git(dir, 'rev-parse', 'HEAD')?.trim()
  if (!head) return `local:${dir}`
  const dirty = git(dir, 'status', '--porcelain', '--untracked-files=no')?.trim()
  const diff = dirty ? git(dir, 'diff', 'HEAD') : undefined
  return `local:${dir}@${head}${diff ? `+${sha256(diff).slice(0, 10)}` : ''}`
}
