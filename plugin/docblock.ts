/**
 * The per-file VM spec: a `@ktstr` tag in a comment at the top of a test file, read on the host
 * before the guest boots.
 *
 *   /** @ktstr topology=1n2l4c1t memory=1024 scheduler=scx_simple sched-args="-v" backend=qemu timeout=60 *\/
 *
 * Strict: an unknown key, a repeated key or a bad value is an error that names the key.
 * Several `@ktstr` tags (one per line of a docblock) are merged.
 */
import { resolveTopology } from '../runtime/protocol/presets.js'
import { KtstrError } from '../src/util/errors.js'
import { shellWords } from '../src/util/shell-words.js'
import { parseMemoryMib, parseTimeoutS } from '../src/vm/defaults.js'
import { parseDiskSpec } from '../src/vm/disk.js'
import type { BackendName } from '../src/vm/session.js'

export interface KtstrDocblock {
  topology?: string
  memoryMib?: number
  /** null: no sched_ext scheduler in this file (`scheduler=eevdf`), whatever the plugin default. */
  scheduler?: string | null
  schedArgs?: string[]
  backend?: BackendName
  timeoutS?: number
  /** As written; a relative path (`./x`, `../x`) is resolved by the caller against the file's folder. */
  kernel?: string
  /** Host files or directories copied into the guest (payloads); relative to the file's folder. */
  include?: string[]
  /** A virtio-blk disk, `FILE[,ro][,iops=N][,bps=N]`, as written (FILE relative to the file's folder). */
  disk?: string
}

const KEYS = ['topology', 'memory', 'scheduler', 'sched-args', 'backend', 'timeout', 'kernel', 'include', 'disk'] as const
export type DocblockKey = (typeof KEYS)[number]
const KNOWN = KEYS.join(', ')

/** Scheduler names that mean "the kernel's default scheduler (EEVDF), no sched_ext". */
export const NO_SCHEDULER = ['eevdf', 'none'] as const

/** Parse the `@ktstr` tags of a test file's source. A file without any gives `{}`. */
export function parseDocblock(source: string): KtstrDocblock {
  const { comments, rest } = leadingComments(source)
  const tags = comments.flatMap(ktstrTags)
  if (tags.length === 0) {
    if (/^[ \t]*(?:\/\*\*|\*|\/\/)[ \t]*@ktstr\b/m.test(rest)) {
      throw new KtstrError('the @ktstr docblock must come first in the file, before any import or code')
    }
    return {}
  }
  const seen = new Set<DocblockKey>()
  const spec: KtstrDocblock = {}
  for (const tag of tags) {
    for (const entry of words(tag, '@ktstr')) {
      const eq = entry.indexOf('=')
      if (eq <= 0) throw new KtstrError(`bad @ktstr entry ${JSON.stringify(entry)}: expected key=value (known keys: ${KNOWN})`)
      const key = entry.slice(0, eq)
      const value = entry.slice(eq + 1)
      if (!(KEYS as readonly string[]).includes(key)) {
        throw new KtstrError(`unknown @ktstr key ${JSON.stringify(key)} (known keys: ${KNOWN})`)
      }
      if (seen.has(key as DocblockKey)) throw new KtstrError(`@ktstr key ${JSON.stringify(key)} is given twice`)
      seen.add(key as DocblockKey)
      setSpecValue(spec, key as DocblockKey, value, '@ktstr')
    }
  }
  return spec
}

/** Validate one value given as text; `source` names where it came from in errors. */
export function setSpecValue(spec: KtstrDocblock, key: DocblockKey, value: string, source: string): void {
  const bad = (why: string): never => {
    throw new KtstrError(`bad ${source} ${key}=${JSON.stringify(value)}: ${why}`)
  }
  switch (key) {
    case 'topology':
      // NnNlNcNt or a gauntlet preset name (smt-2llc); either is validated here.
      try {
        resolveTopology(value)
      } catch (e) {
        bad((e as Error).message.replace(/^bad topology "[^"]*": /, ''))
      }
      spec.topology = value
      break
    case 'memory':
      spec.memoryMib = parseMemoryMib(value, `${source} ${key}=${JSON.stringify(value)}`)
      break
    case 'timeout':
      spec.timeoutS = parseTimeoutS(value, `${source} ${key}=${JSON.stringify(value)}`)
      break
    case 'backend':
      if (value !== 'qemu' && value !== 'kvm' && value !== 'auto') bad('expected qemu, kvm or auto')
      spec.backend = value as BackendName
      break
    case 'scheduler':
      if (value === '') bad('expected a scheduler name (e.g. scx_simple), a path, or eevdf for none')
      spec.scheduler = (NO_SCHEDULER as readonly string[]).includes(value) ? null : value
      break
    case 'sched-args':
      spec.schedArgs = words(value, `${source} sched-args`)
      break
    case 'kernel':
      if (value === '') bad('expected a kernel path or cache key')
      spec.kernel = value
      break
    case 'include': {
      // Comma-separated paths, e.g. include=./bench.sh,/usr/bin/stress-ng
      const paths = value.split(',').map((p) => p.trim())
      if (paths.some((p) => p === '')) bad('expected comma-separated paths, e.g. include=./payload.sh,/usr/bin/stress-ng')
      spec.include = paths
      break
    }
    case 'disk':
      try {
        parseDiskSpec(value)
      } catch (e) {
        bad((e as Error).message)
      }
      spec.disk = value
      break
  }
}

function words(text: string, what: string): string[] {
  try {
    return shellWords(text)
  } catch (e) {
    throw new KtstrError(`${what}: ${(e as Error).message}`)
  }
}

/** Text after each `@ktstr` tag in a comment body, up to the end of its line. */
function ktstrTags(comment: string): string[] {
  const out: string[] = []
  for (const raw of comment.split(/\r?\n/)) {
    const line = raw.replace(/^\s*\*?\s?/, '')
    const m = /(?:^|\s)@ktstr(?:\s+(.*))?$/.exec(line)
    if (m) out.push((m[1] ?? '').trim())
  }
  return out
}

/** Bodies of the comments before the first code token (after a BOM and a `#!` line), and the rest. */
function leadingComments(source: string): { comments: string[]; rest: string } {
  let i = source.charCodeAt(0) === 0xfeff ? 1 : 0
  if (source.startsWith('#!', i)) {
    const nl = source.indexOf('\n', i)
    i = nl < 0 ? source.length : nl + 1
  }
  const comments: string[] = []
  for (;;) {
    while (i < source.length && /\s/.test(source[i]!)) i++
    if (source.startsWith('//', i)) {
      const nl = source.indexOf('\n', i)
      const end = nl < 0 ? source.length : nl
      comments.push(source.slice(i + 2, end))
      i = end
    } else if (source.startsWith('/*', i)) {
      const end = source.indexOf('*/', i + 2)
      if (end < 0) throw new KtstrError('unterminated comment at the top of the file')
      comments.push(source.slice(i + (source[i + 2] === '*' ? 3 : 2), end))
      i = end + 2
    } else {
      return { comments, rest: source.slice(i) }
    }
  }
}
