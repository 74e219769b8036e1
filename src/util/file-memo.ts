import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { writeFileAtomically } from './durable.js'
import { cacheRoot } from './paths.js'

const memos = new Map<string, unknown>()

/**
 * A value worked out from a file (its hash, what a binary prints about itself), remembered in this
 * process and on disk (`<cache>/<kind>/`) while the file stays the same one: same device, inode,
 * size, modification and change time. Any write to it moves its change time, which nobody can set
 * back. A memo that cannot be read, is not a value (`isValue`), or cannot be written just means
 * working it out again. Every warm start needs a few of these before its VMM can restore.
 */
export function memoByFile<T>(kind: string, file: string, compute: () => T, isValue: (v: unknown) => v is T): T {
  const st = fs.statSync(file, { bigint: true })
  const id = `${path.resolve(file)}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  const inProcess = `${kind}\0${id}`
  if (memos.has(inProcess)) return memos.get(inProcess) as T
  let value = readMemo(kind, file, id, isValue)
  if (value === undefined) {
    value = compute()
    writeMemo(kind, file, id, value)
  }
  memos.set(inProcess, value)
  return value
}

function memoFile(kind: string, file: string): string {
  return path.join(cacheRoot(), kind, `${createHash('sha256').update(path.resolve(file)).digest('hex').slice(0, 32)}.json`)
}

function readMemo<T>(kind: string, file: string, id: string, isValue: (v: unknown) => v is T): T | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(memoFile(kind, file), 'utf8')) as { id?: unknown; value?: unknown }
    return v.id === id && isValue(v.value) ? v.value : undefined
  } catch {
    return undefined
  }
}

function writeMemo(kind: string, file: string, id: string, value: unknown): void {
  try {
    writeFileAtomically(memoFile(kind, file), Buffer.from(`${JSON.stringify({ id, value })}\n`))
  } catch {
    // A read-only or full cache: the next process works it out again.
  }
}
