import fs from 'node:fs'
import path from 'node:path'
import { log } from '../util/log.js'
import { libraryClosure } from './closure.js'
import { isElf, readElf } from './elf.js'
import { GuestTree, type TreeCost } from './tree.js'

export interface RunArchiveOptions {
  /** Files made up for this run, e.g. { guestPath: '/ktstr/run/spec.json', content: JSON.stringify(spec) }. */
  data: { guestPath: string; content: Buffer | string; mode?: number }[]
  /**
   * Host files or directories (recursively) to include at their host paths. A dynamically linked ELF
   * file among them (e.g. the scheduler binary) brings its library closure along. A file given as
   * `{ path, source }` has `source`'s content (a stripped copy).
   */
  hostPaths: (string | { path: string; source: string })[]
  /** Guest paths of regular files the base image already has (BaseImage.files); they are not repeated. */
  omit?: ReadonlySet<string>
  /** Stops collecting with its error once the archive gets too big (see initramfsLimit). */
  limit?: (cost: TreeCost) => void
}

/**
 * The per-run archive appended to the base image, collected but not yet written: composeInitrd
 * streams it to the initrd file. Nothing is read into memory but file metadata and `data`.
 */
export function runArchive(opts: RunArchiveOptions): GuestTree {
  const tree = new GuestTree({ ...(opts.omit ? { omit: opts.omit } : {}), ...(opts.limit ? { limit: opts.limit } : {}) })
  opts.limit?.(tree.cost()) // the base image alone may already be too big
  for (const entry of opts.hostPaths) {
    const [p, source] = typeof entry === 'string' ? [entry, undefined] : [entry.path, entry.source]
    if (source === undefined && fs.statSync(p).isDirectory()) {
      tree.addDir(p)
      // Programs and native addons inside need their libraries too (e.g. a .node file needing librt).
      for (const lib of dirLibraries(p)) tree.add(lib)
      continue
    }
    tree.add(p, source === undefined ? {} : { source })
    if (isElf(p) && readElf(p).interpreter) {
      for (const lib of libraryClosure([p]).slice(1)) tree.add(lib)
    }
  }
  for (const d of opts.data) tree.addData(d.guestPath, d.content, d.mode ?? 0o644)
  return tree
}

const NATIVE_NAME = /\.(node|so)(\.\d+)*$/

/**
 * The libraries the ELF programs and shared objects under `dir` need. Lenient: an object for another
 * machine or libc (prebuilt binaries for other platforms sit in node_modules) is skipped, not an error.
 */
function dirLibraries(dir: string): string[] {
  const libs = new Set<string>()
  const walk = (d: string) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name)
      if (ent.isDirectory()) walk(p)
      else if (ent.isFile() && (NATIVE_NAME.test(ent.name) || isExecutableFile(p)) && isElf(p)) {
        try {
          if (readElf(p).machine !== 62) continue
          for (const lib of libraryClosure([p]).slice(1)) libs.add(lib)
        } catch (e) {
          log.debug(`include: no library closure for ${p}: ${(e as Error).message}`)
        }
      }
    }
  }
  walk(dir)
  return [...libs]
}

function isExecutableFile(p: string): boolean {
  try {
    return (fs.statSync(p).mode & 0o111) !== 0
  } catch {
    return false
  }
}
