/**
 * `ktstr cache list|clean`: what ktstr keeps between runs that it can make again — warm-start
 * snapshots and base images (with the stripped node they hold), stripped schedulers. Guest kernels are not listed here:
 * they take long to build (`ktstr kernel list`).
 */
import path from 'node:path'
import { BASE_IMAGE_NAME, imageDir } from '../image/base.js'
import { type ListedEntry, listCached, pruneCached } from '../image/cache-entry.js'
import { STRIPPED_NAME } from '../image/stripped.js'
import { KtstrError } from '../util/errors.js'
import { SNAPSHOT_NAME, snapshotCacheBytes, snapshotDir } from '../vm/warm/warm-start.js'

export const CACHE_USAGE = `usage: ktstr cache list | clean
  list   the warm-start snapshots and base images kept, most recently used first
  clean  remove them (entries in use by a running guest stay); they are made again when needed`

interface Kind {
  name: string
  dir: string
  re: RegExp
}

const kinds = (): Kind[] => [
  { name: 'snapshot', dir: snapshotDir(), re: SNAPSHOT_NAME },
  { name: 'image', dir: imageDir(), re: BASE_IMAGE_NAME },
  { name: 'node', dir: imageDir(), re: STRIPPED_NAME.node },
  { name: 'scheduler', dir: imageDir(), re: STRIPPED_NAME.scheduler },
]

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`

export function cacheCommand(argv: string[]): number {
  const [sub, ...rest] = argv
  if (rest.length > 0 || (sub !== 'list' && sub !== 'clean')) {
    throw new KtstrError(`cache needs list or clean${sub === undefined ? '' : `, not ${[sub, ...rest].join(' ')}`}; ${CACHE_USAGE.split('\n')[0]}`)
  }
  if (sub === 'list') {
    const rows = kinds().flatMap((k) => listCached(k.dir, k.re).map((e) => ({ kind: k.name, e })))
    for (const { kind, e } of rows) process.stdout.write(`${kind.padEnd(9)} ${mib(e.bytes).padStart(9)}  ${new Date(e.used).toISOString().slice(0, 19)}Z  ${e.path}\n`)
    const snapshots = rows.filter((r) => r.kind === 'snapshot').reduce((a, r) => a + r.e.bytes, 0)
    process.stdout.write(`snapshots: ${mib(snapshots)} of ${mib(snapshotCacheBytes())} (KTSTR_SNAPSHOT_CACHE_MIB) in ${snapshotDir()}\n`)
    return 0
  }
  let freed = 0
  const busy: ListedEntry[] = []
  for (const k of kinds()) {
    const { removed, inUse } = pruneCached(k.dir, k.re, 0, '')
    freed += removed.reduce((a, e) => a + e.bytes, 0)
    busy.push(...inUse)
  }
  process.stdout.write(`removed ${mib(freed)}${busy.length ? `; in use, kept: ${busy.map((e) => path.basename(e.path)).join(', ')}` : ''}\n`)
  return 0
}
