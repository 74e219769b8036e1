/**
 * Build step after `tsc`: compile the workload program (ktstr-workload.c) with the system C compiler
 * into dist/runtime/ktstr-workload, statically linked so the guest needs no libraries for it.
 * Run as `node dist/runtime/workloads/build-workload.js` (package.json build/prepare).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** This file lives at <root>/dist/runtime/workloads/ once compiled (or <root>/runtime/workloads/ as source). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir)
    if (up === dir) throw new Error('ktstr build: cannot find package.json above build-workload')
    dir = up
  }
  return dir
}

export const WORKLOAD_SOURCE = path.join('runtime', 'workloads', 'ktstr-workload.c')
export const WORKLOAD_OUTPUT = path.join('dist', 'runtime', 'ktstr-workload')

function findCompiler(): string | undefined {
  const candidates = [process.env.CC, 'cc', 'gcc'].filter((c): c is string => !!c)
  return candidates.find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0)
}

/** Compile when the binary is missing or older than its source. Returns the output path. */
export function buildWorkload(root = packageRoot(), opts: { force?: boolean } = {}): string {
  const src = path.join(root, WORKLOAD_SOURCE)
  const out = path.join(root, WORKLOAD_OUTPUT)
  const srcTime = fs.statSync(src).mtimeMs
  if (!opts.force && fs.existsSync(out) && fs.statSync(out).mtimeMs >= srcTime) return out
  const cc = findCompiler()
  if (!cc) {
    throw new Error(`no C compiler to build ${WORKLOAD_SOURCE} (tried $CC, cc, gcc); install one: apt-get install gcc`)
  }
  fs.mkdirSync(path.dirname(out), { recursive: true })
  const tmp = `${out}.tmp-${process.pid}`
  const args = ['-static', '-O2', '-Wall', '-Wextra', '-o', tmp, src]
  const r = spawnSync(cc, args, { encoding: 'utf8' })
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true })
    const why = (r.stderr || r.error?.message || '').trim()
    const hint = /cannot find -lc|libc\.a/.test(why) ? ' (static linking needs libc.a: apt-get install libc6-dev)' : ''
    throw new Error(`${cc} ${args.join(' ')} failed${hint}:\n${why}`)
  }
  fs.renameSync(tmp, out)
  return out
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    const out = buildWorkload(undefined, { force: process.argv.includes('--force') })
    if (process.env.KTSTR_LOG === 'debug') process.stderr.write(`ktstr build: ${out}\n`)
  } catch (e) {
    process.stderr.write(`ktstr build: ${(e as Error).message}\n`)
    process.exit(1)
  }
}
