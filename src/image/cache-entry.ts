/**
 * One cached file (a base image, a stripped node) with a manifest beside it, `<file>.ok`, written
 * last: an entry counts only when its manifest matches it. Writes are crash-safe (a temporary file
 * in the same folder, fsync, rename, fsync of the folder; then the manifest the same way) and
 * serialized across processes by `<file>.lock` (see FileLock): one process builds, the others wait
 * and reuse its result.
 *
 * The check on every use is cheap on purpose (a full sha256 of a 96 MB image takes ~110 ms, more
 * than the copy it guards): the size, and a sha256 of samples (the first and last 64 KiB and 16
 * blocks of 4 KiB spread between). Since writes reach the disk before the rename, what can go
 * wrong later is truncation or overwriting by something else, or zeroed ranges on a file system
 * that lost unsynced data; the size and the samples catch those.
 */

import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { makeFileAtomically } from '../util/durable.js'
import { KtstrError } from '../util/errors.js'
import { FileLock } from '../util/file-lock.js'
import { log } from '../util/log.js'

const MANIFEST_VERSION = 1
const EDGE = 64 << 10
const SAMPLE = 4 << 10
const SAMPLES = 16

export interface Manifest {
  version: number
  bytes: number
  /** sha256 of the sampled ranges (see sampleHash). */
  sample: string
  /** What the builder adds (e.g. the unpacked size of an image). */
  extra: Record<string, number>
}

export interface CachedFile {
  path: string
  /** False when a valid entry was reused (by this process or one that built it meanwhile). */
  built: boolean
  manifest: Manifest
}

export const manifestPath = (file: string) => `${file}.ok`
export const lockPath = (file: string) => `${file}.lock`
/**
 * A file that belongs to an entry beside its main file (a snapshot's guest RAM): written by the
 * entry's `make` before the main file is published, counted and removed with it.
 */
export const partPath = (file: string, part: string) => `${file}.part-${part}`
const PART = /\.part-[^/]+$/

const inFlight = new Map<string, Promise<CachedFile>>()

/**
 * A valid entry at `file`: reused when its manifest matches, else made by `make(tmp)` (which writes
 * the content to `tmp` and returns the manifest's extra fields) under the entry's exclusive lock.
 */
export function ensureCached(file: string, make: (tmp: string) => Promise<Record<string, number>>): Promise<CachedFile> {
  const pending = inFlight.get(file)
  if (pending) return pending.then((r) => ({ ...r, built: false }))
  const p = ensure(file, make).finally(() => inFlight.delete(file))
  inFlight.set(file, p)
  return p
}

async function ensure(file: string, make: (tmp: string) => Promise<Record<string, number>>): Promise<CachedFile> {
  const reused = await underLock(file, 'shared', () => useIfValid(file))
  if (reused) return reused
  return underLock(file, 'exclusive', async () => {
    const meanwhile = useIfValid(file) // another process may have built it while we waited
    if (meanwhile) return meanwhile
    fs.rmSync(manifestPath(file), { force: true })
    const extra = await makeFileAtomically(file, make)
    const st = fs.statSync(file)
    const manifest: Manifest = { version: MANIFEST_VERSION, bytes: st.size, sample: sampleHash(file, st.size), extra }
    await makeFileAtomically(manifestPath(file), async (tmp) => (fs.writeFileSync(tmp, `${JSON.stringify(manifest)}\n`), {}))
    return { path: file, built: true, manifest }
  })
}

/**
 * Copies the entry to `dest` under its shared lock, so pruning cannot remove it meanwhile. An entry
 * that went missing or bad since `ensureCached` is made again by `rebuild` first.
 */
export async function copyCached(file: string, dest: string, rebuild: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const copied = await underLock(file, 'shared', () => {
      if (!readValid(file)) return false
      fs.copyFileSync(file, dest, fs.constants.COPYFILE_FICLONE) // a reflink, or copy_file_range
      return true
    })
    if (copied) return
    await rebuild()
  }
  throw new KtstrError(`the cached image ${file} keeps going missing while in use; check what else writes to ${path.dirname(file)}`)
}

/**
 * Runs `use` on the entry while holding its shared lock (pruning cannot remove it meanwhile), if it
 * is valid; undefined without calling `use` when it is missing or bad.
 */
export async function withCached<T>(file: string, use: (manifest: Manifest) => Promise<T>): Promise<{ value: T } | undefined> {
  return underLock(file, 'shared', async () => {
    const manifest = useIfValid(file)
    return manifest ? { value: await use(manifest.manifest) } : undefined
  })
}

/**
 * Removes entries matching `re` in `dir` beyond the `keep` most recently used — a count, or the
 * newest that fit in `maxBytes` together — (never `current`), and temporary files of builds that
 * died. An entry in use (its lock held: a build or a copy) is kept.
 */
export function pruneCached(dir: string, re: RegExp, keep: number | { maxBytes: number }, current: string): { removed: ListedEntry[]; inUse: ListedEntry[] } {
  const found = listCached(dir, re, { sweep: true })
  const removed: ListedEntry[] = []
  const inUse: ListedEntry[] = []
  let kept = 0
  let bytes = 0
  for (const e of found) {
    const { path: p, bytes: size } = e
    kept++
    bytes += size
    if (typeof keep === 'number' ? kept <= keep : bytes <= keep.maxBytes) continue
    if (p === current) continue
    const lock = FileLock.tryAcquire(lockPath(p), 'exclusive')
    if (!lock) {
      log.debug(`keeping old cached file ${p}: in use`)
      inUse.push(e)
      continue
    }
    log.debug(`removing old cached file ${p}`)
    removeEntry(p, lock)
    removed.push(e)
    kept--
    bytes -= size
  }
  return { removed, inUse }
}

export interface ListedEntry {
  path: string
  /** Disk use, parts included (a sparse part counts what it holds). */
  bytes: number
  /** Last use (the manifest's mtime), ms since the epoch. */
  used: number
}

/**
 * The entries matching `re` in `dir`, most recently used first. `sweep` also removes temporary
 * files of builds that died and manifests, locks and parts whose entry is gone.
 */
export function listCached(dir: string, re: RegExp, opts: { sweep?: boolean } = {}): ListedEntry[] {
  const found: ListedEntry[] = []
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : []
  for (const name of names) {
    const p = path.join(dir, name)
    const st = fs.statSync(p, { throwIfNoEntry: false })
    if (!st) continue
    if (name.includes('.tmp-')) {
      if (opts.sweep) removeStaleTemp(p)
    } else if (/\.(ok|lock)$/.test(name) || PART.test(name)) {
      if (opts.sweep) removeOrphan(p)
    } else if (re.test(name)) {
      const parts = names.filter((n) => n.startsWith(`${name}.part-`)).map((n) => fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.blocks ?? 0)
      const bytes = (st.blocks + parts.reduce((a, b) => a + b, 0)) * 512
      found.push({ path: p, used: fs.statSync(manifestPath(p), { throwIfNoEntry: false })?.mtimeMs ?? st.mtimeMs, bytes })
    }
  }
  return found.sort((a, b) => b.used - a.used)
}

/** Removes an entry that failed in use (e.g. a snapshot QEMU refused), so the next use makes it anew. */
export async function removeCached(file: string): Promise<void> {
  removeEntry(file, await FileLock.acquire(lockPath(file), 'exclusive'))
}

function removeEntry(file: string, lock: FileLock): void {
  fs.rmSync(manifestPath(file), { force: true }) // first: a crash here leaves an entry that is simply rebuilt
  fs.rmSync(file, { force: true })
  const dir = path.dirname(file)
  const base = path.basename(file)
  for (const n of fs.readdirSync(dir)) if (n.startsWith(`${base}.part-`)) fs.rmSync(path.join(dir, n), { force: true })
  lock.remove()
}

/** A temporary file of a build that is no longer running (its entry's lock is free: the builder died). */
function removeStaleTemp(p: string): void {
  const file = p.slice(0, p.indexOf('.tmp-')).replace(/\.ok$/, '')
  const lock = FileLock.tryAcquire(lockPath(file), 'exclusive')
  if (!lock) return
  fs.rmSync(p, { force: true })
  if (fs.existsSync(file) || fs.existsSync(manifestPath(file))) lock.release()
  else lock.remove()
}

/** A manifest, lock file or part whose entry is gone (and is not being made: its lock is free). */
function removeOrphan(p: string): void {
  const file = p.replace(/\.(ok|lock)$/, '').replace(PART, '')
  if (fs.existsSync(file)) return
  const lock = FileLock.tryAcquire(lockPath(file), 'exclusive')
  if (!lock) return
  if (!fs.existsSync(file)) {
    fs.rmSync(manifestPath(file), { force: true })
    fs.rmSync(p, { force: true })
    lock.remove()
  } else {
    lock.release()
  }
}

/** The manifest when `file` matches it, else undefined (missing, truncated, overwritten). */
export function readValid(file: string): Manifest | undefined {
  let m: Manifest
  try {
    m = JSON.parse(fs.readFileSync(manifestPath(file), 'utf8')) as Manifest
  } catch {
    return undefined
  }
  const st = fs.statSync(file, { throwIfNoEntry: false })
  if (m?.version !== MANIFEST_VERSION || !st?.isFile() || st.size !== m.bytes) return undefined
  return sampleHash(file, st.size) === m.sample ? m : undefined
}

function useIfValid(file: string): CachedFile | undefined {
  const manifest = readValid(file)
  if (!manifest) {
    if (fs.existsSync(file)) log.debug(`cached file ${file} does not match its manifest; making it again`)
    return undefined
  }
  const now = new Date()
  fs.utimesSync(manifestPath(file), now, now) // last use, for pruning
  return { path: file, built: false, manifest }
}

async function underLock<T>(file: string, mode: 'shared' | 'exclusive', fn: () => T | Promise<T>): Promise<T> {
  const lock = await FileLock.acquire(lockPath(file), mode, {
    onWait: (pid) => log.debug(`${file} is being made by pid ${pid ?? '?'}; waiting for it`),
  })
  try {
    return await fn()
  } finally {
    lock.release()
  }
}

/** sha256 over the first and last 64 KiB and 16 evenly spread 4 KiB blocks (with the size). */
export function sampleHash(file: string, size: number): string {
  const h = createHash('sha256').update(`${size}\n`)
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(EDGE)
    const take = (off: number, len: number) => {
      const n = fs.readSync(fd, buf, 0, Math.min(len, size - off), off)
      h.update(buf.subarray(0, n))
    }
    take(0, EDGE)
    for (let i = 1; i <= SAMPLES; i++) take(Math.floor((size * i) / (SAMPLES + 1)), SAMPLE)
    take(Math.max(0, size - EDGE), EDGE)
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}
