/**
 * The per-file VM spec: a `@ktstr` tag in a comment at the top of a test file, read on the host
 * before the guest boots.
 *
 *   /** @ktstr topology=1n2l4c1t memory=1024 scheduler=scx_simple sched-args="-v" backend=qemu timeout=60 *\/
 *
 * Strict: an unknown or repeated key is an error here, a bad value one of ./parse.ts; each names
 * the key. Several `@ktstr` tags (one per line of a docblock) are merged.
 */
import { KtstrError } from '../../util/errors.js'
import { shellWords } from '../../util/shell-words.js'
import { parseSpec, SPEC_KEYS, type SpecKey } from './parse.js'
import type { VmSpec } from './request.js'

const KNOWN = SPEC_KEYS.join(', ')

/**
 * Parse the `@ktstr` tags of a test file's source (its folder is `fileDir`; relative paths
 * resolve against it). A file without any gives `{}`; values are checked by ./parse.ts.
 */
export function parseDocblock(source: string, fileDir: string): VmSpec {
  const { comments, rest } = leadingComments(source)
  const tags = comments.flatMap(ktstrTags)
  if (tags.length === 0) {
    if (/^[ \t]*(?:\/\*\*|\*|\/\/)[ \t]*@ktstr\b/m.test(rest)) {
      throw new KtstrError('the @ktstr docblock must come first in the file, before any import or code')
    }
    return {}
  }
  const values: Partial<Record<SpecKey, string>> = {}
  for (const tag of tags) {
    let entries: string[]
    try {
      entries = shellWords(tag)
    } catch (e) {
      throw new KtstrError(`@ktstr: ${(e as Error).message}`)
    }
    for (const entry of entries) {
      const eq = entry.indexOf('=')
      if (eq <= 0) throw new KtstrError(`bad @ktstr entry ${JSON.stringify(entry)}: expected key=value (known keys: ${KNOWN})`)
      const key = entry.slice(0, eq) as SpecKey
      if (!SPEC_KEYS.includes(key)) throw new KtstrError(`unknown @ktstr key ${JSON.stringify(key)} (known keys: ${KNOWN})`)
      if (values[key] !== undefined) throw new KtstrError(`@ktstr key ${JSON.stringify(key)} is given twice`)
      values[key] = entry.slice(eq + 1)
    }
  }
  return parseSpec(values, 'docblock', fileDir)
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
