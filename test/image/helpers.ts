import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { packageRoot } from '../../src/util/paths.js'

export const hasCpio = spawnSync('cpio', ['--version']).status === 0
export const isRoot = process.getuid?.() === 0

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ktstr-image-${tag}-`))
}

/**
 * A stand-in ktstr package (dist/runtime is not always built) for baseImage's packageRoot, whose
 * node_modules is a symlink to the real one: koffi then comes from the real install, reached
 * through a symlink. Returns its real path.
 */
export function standInPackage(): string {
  const pkg = fs.realpathSync(tmpDir('pkg'))
  fs.mkdirSync(path.join(pkg, 'dist/runtime'), { recursive: true })
  fs.mkdirSync(path.join(pkg, 'dist/native-shims'), { recursive: true })
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'ktstr', type: 'module' }))
  fs.writeFileSync(
    path.join(pkg, 'dist/runtime/probe.js'),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the probe script's own template literal
    "import koffi from 'koffi'\nconst getpid = koffi.load('libc.so.6').func('int getpid()')\nconsole.log(`probe ok pid=${getpid()} node=${process.version}`)\n",
  )
  fs.writeFileSync(path.join(pkg, 'dist/runtime/probe.js.map'), '{}')
  fs.writeFileSync(path.join(pkg, 'dist/runtime/probe.d.ts'), 'export {}')
  fs.writeFileSync(path.join(pkg, 'dist/native-shims/libc.js'), 'export {}\n')
  fs.symlinkSync(path.join(packageRoot(), 'node_modules'), path.join(pkg, 'node_modules'))
  return pkg
}

/** Runs GNU cpio with `archive` (a path or bytes) on stdin. */
export function cpio(args: string[], archive: string | Buffer, cwd?: string): { out: string; err: string; status: number | null } {
  const input = typeof archive === 'string' ? fs.readFileSync(archive) : archive
  const r = spawnSync('cpio', args, { input, cwd, maxBuffer: 64 << 20, encoding: 'buffer' })
  return { out: r.stdout.toString(), err: r.stderr.toString(), status: r.status }
}

/** `cpio -t` names. */
export function listNames(archive: string | Buffer): string[] {
  const r = cpio(['-t', '--quiet'], archive)
  if (r.status !== 0) throw new Error(`cpio -t failed: ${r.err}`)
  return r.out.split('\n').filter((l) => l !== '')
}

/** `cpio -tv` lines keyed by name (for symlinks the name is before " -> "). */
export function listVerbose(archive: string | Buffer): Map<string, string> {
  const r = cpio(['-tv', '--quiet'], archive)
  if (r.status !== 0) throw new Error(`cpio -tv failed: ${r.err}`)
  const m = new Map<string, string>()
  for (const line of r.out.split('\n')) {
    if (!line) continue
    // "lrwxrwxrwx   1 root root  7 Jan  1  1970 bin -> usr/bin": name starts after the year.
    const mm = /^\S+\s+\d+\s+\S+\s+\S+\s+(?:\d+,\s+\d+|\d+)\s+\S+\s+\d+\s+\d+\s+(.*)$/.exec(line)
    if (!mm) throw new Error(`unparsed cpio -tv line: ${line}`)
    m.set(mm[1]!.split(' -> ')[0]!, line)
  }
  return m
}

export interface RawEntry {
  offset: number
  ino: number
  mode: number
  nlink: number
  mtime: number
  size: number
  rdevmajor: number
  rdevminor: number
  name: string
  dataOffset: number
}

/** Walks newc headers of one archive (test-side reader, to check alignment and header fields). */
export function rawEntries(buf: Buffer, start = 0): { entries: RawEntry[]; end: number } {
  const out: RawEntry[] = []
  let off = start
  for (;;) {
    const magic = buf.toString('latin1', off, off + 6)
    if (magic !== '070701') throw new Error(`bad magic ${JSON.stringify(magic)} at ${off}`)
    const f = (i: number) => parseInt(buf.toString('latin1', off + 6 + i * 8, off + 14 + i * 8), 16)
    const namesize = f(11)
    const name = buf.toString('utf8', off + 110, off + 110 + namesize - 1)
    const dataOffset = align4(off + 110 + namesize)
    const e: RawEntry = { offset: off, ino: f(0), mode: f(1), nlink: f(4), mtime: f(5), size: f(6), rdevmajor: f(9), rdevminor: f(10), name, dataOffset }
    out.push(e)
    off = align4(dataOffset + e.size)
    if (name === 'TRAILER!!!') return { entries: out, end: off }
  }
}

function align4(n: number): number {
  return (n + 3) & ~3
}
