/**
 * The host end of the guest's snapshot file I/O (the bridge runtime/vitest/worker.ts gives
 * runtime/vitest/snapshot-environment.ts): snapshot files and inline-snapshot rewrites of test files land in
 * the host's tree, never in the guest's copy.
 *
 * The guest is not trusted. It may touch only the snapshot files of the test files it is running:
 * Vitest's snapshot file of each (the project's resolveSnapshotPath: read, write, remove) and the
 * test file itself (inline snapshots: read, write). Each must really be inside the project: its
 * folders are resolved with realpath, and the file itself must be a regular file, not a symlink.
 */
import { constants } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { ENVELOPE_MARK, type HostFsReply, type HostFsRequest } from '../runtime/protocol/vitest-envelope.js'
import { KtstrError } from '../src/util/errors.js'

/** What the guest running some test files may touch. */
export interface SnapshotScope {
  /** The project's folders; every file must really (realpath) be inside one. */
  readonly roots: readonly string[]
  /** The test files the guest runs now. */
  readonly testFiles: readonly string[]
  /** Vitest's snapshot file for a test file. */
  snapshotPath(testFile: string): string | Promise<string>
}

export async function serveHostFs(req: HostFsRequest, scope: SnapshotScope): Promise<HostFsReply> {
  const reply = { [ENVELOPE_MARK]: 'fs-reply', id: req.id } as const
  try {
    const file = await confine(req, scope)
    switch (req.op) {
      case 'read':
        return { ...reply, ok: true, value: await readRegular(file) }
      case 'write':
        await fs.mkdir(path.dirname(file), { recursive: true })
        await writeRegular(file, req.content)
        return { ...reply, ok: true, value: null }
      case 'remove':
        await removeRegular(file)
        return { ...reply, ok: true, value: null }
    }
  } catch (e) {
    return { ...reply, ok: false, message: (e as Error).message }
  }
}

/** The real path to operate on, or a one-line refusal. */
async function confine(req: HostFsRequest, scope: SnapshotScope): Promise<string> {
  const asked = req.path
  const snapshots = await Promise.all(scope.testFiles.map(async (f) => path.resolve(await scope.snapshotPath(f))))
  const allowed = req.op === 'remove' ? snapshots : [...snapshots, ...scope.testFiles.map((f) => path.resolve(f))]
  if (!path.isAbsolute(asked) || !allowed.includes(path.resolve(asked))) {
    const may = scope.testFiles.length
      ? `it may ${req.op} only the snapshot file of the test file it runs (${snapshots.join(', ')})${req.op === 'remove' ? '' : ' and that test file (inline snapshots)'}`
      : 'no test file is running'
    throw new KtstrError(`ktstr: refusing to ${req.op} ${JSON.stringify(asked)} for the guest: ${may}; toMatchFileSnapshot is not supported in ktstr guests`)
  }
  const file = path.resolve(asked)
  const real = await realFolder(path.dirname(file))
  const roots = await Promise.all(scope.roots.map((r) => fs.realpath(r).catch(() => path.resolve(r))))
  if (!roots.some((r) => isInside(r, real.existing))) {
    throw new KtstrError(`ktstr: refusing to ${req.op} ${file} for the guest: its folder leads outside the project (to ${real.existing}, through a symlink)`)
  }
  const target = path.join(real.existing, ...real.missing, path.basename(file))
  const st = await fs.lstat(target).catch(() => undefined)
  if (st?.isSymbolicLink()) throw new KtstrError(`ktstr: refusing to ${req.op} ${file} for the guest: it is a symlink; snapshot files must be regular files`)
  if (st && !st.isFile()) throw new KtstrError(`ktstr: refusing to ${req.op} ${file} for the guest: it is not a regular file`)
  return target
}

/** The deepest existing ancestor of `dir`, resolved, and the folder names below it still to create. */
async function realFolder(dir: string): Promise<{ existing: string; missing: string[] }> {
  const missing: string[] = []
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      return { existing: await fs.realpath(d), missing }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || d === path.dirname(d)) throw e
      missing.unshift(path.basename(d))
    }
  }
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel))
}

// O_NOFOLLOW: a symlink put in place after the checks above is refused by the kernel, not followed.
async function readRegular(file: string): Promise<string | null> {
  let fh: fs.FileHandle
  try {
    fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
  try {
    if (!(await fh.stat()).isFile()) throw new KtstrError(`ktstr: refusing to read ${file} for the guest: it is not a regular file`)
    return await fh.readFile('utf8')
  } finally {
    await fh.close()
  }
}

async function writeRegular(file: string, content: string): Promise<void> {
  const fh = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o666)
  try {
    await fh.writeFile(content, 'utf8')
  } finally {
    await fh.close()
  }
}

async function removeRegular(file: string): Promise<void> {
  try {
    await fs.unlink(file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
}
