/**
 * Stripped copies of host binaries for the guest, cached in the image folder by the binary's path,
 * size and modification time: node without its symbols (~12 MB less for every cold boot to unpack),
 * a scheduler without its debug sections (about half its size, which a warm start sends over the
 * channel every run). Without `strip`, or when it fails, the binary goes as it is.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { log } from '../util/log.js'
import { which } from '../util/which.js'
import { ensureCached, pruneCached } from './cache-entry.js'

export type StripKind = 'node' | 'scheduler'

/** What each kind loses: node everything but what runs it; a scheduler only its debug sections (its symbols stay for backtraces). */
const STRIP_ARGS: Record<StripKind, string[]> = { node: [], scheduler: ['--strip-debug'] }
/** Copies of each kind kept; a scheduler being edited and rebuilt makes one per build. */
const KEEP: Record<StripKind, number> = { node: 2, scheduler: 8 }
export const STRIPPED_NAME: Record<StripKind, RegExp> = { node: /^node-[0-9a-f]+-stripped$/, scheduler: /^scheduler-[0-9a-f]+-stripped$/ }

/** The stripped copy of `file` in `dir`, or undefined when there is no `strip` or it failed (then use `file`). */
export async function strippedCopy(kind: StripKind, file: string, dir: string): Promise<string | undefined> {
  const strip = findStrip()
  if (!strip) return undefined
  const st = fs.statSync(file)
  const id = createHash('sha256')
    .update(`${path.resolve(file)}\0${st.size}\0${st.mtimeMs}`)
    .digest('hex')
    .slice(0, 16)
  const out = path.join(dir, `${kind}-${id}-stripped`)
  try {
    fs.mkdirSync(dir, { recursive: true })
    const entry = await ensureCached(out, async (tmp) => {
      await promisify(execFile)(strip, [...STRIP_ARGS[kind], '-o', tmp, file])
      return {}
    })
    if (entry.built) pruneCached(dir, STRIPPED_NAME[kind], KEEP[kind], out)
  } catch (e) {
    log.warn(`strip ${file} failed, using it unstripped: ${(e as Error).message.split('\n')[0]}`)
    return undefined
  }
  return out
}

/** `strip` from binutils on PATH, if there. */
export function findStrip(): string | undefined {
  return which('strip')
}
