import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { writeFileAtomically } from './durable.js'
import { cacheRoot } from './paths.js'

const hashes = new Map<string, string>()

/**
 * sha256 of a file. Hashing a 10 MB kernel costs ~25 ms, which every warm start would wait for
 * (its snapshot key names the kernel by content), so the hash is remembered in this process and
 * on disk (`<cache>/hashes/`) while the file stays the same one: same device, inode, size,
 * modification and change time. Any write to it moves its change time, which nobody can set back;
 * a memo that cannot be read or written just means hashing again.
 */
export function fileSha256(file: string): string {
  const st = fs.statSync(file, { bigint: true })
  const id = `${path.resolve(file)}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  let h = hashes.get(id) ?? readMemo(file, id)
  if (!h) {
    h = createHash('sha256').update(fs.readFileSync(file)).digest('hex')
    writeMemo(file, id, h)
  }
  hashes.set(id, h)
  return h
}

function memoFile(file: string): string {
  return path.join(cacheRoot(), 'hashes', `${createHash('sha256').update(path.resolve(file)).digest('hex').slice(0, 32)}.json`)
}

function readMemo(file: string, id: string): string | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(memoFile(file), 'utf8')) as { id?: unknown; sha256?: unknown }
    return v.id === id && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256) ? v.sha256 : undefined
  } catch {
    return undefined
  }
}

function writeMemo(file: string, id: string, sha256: string): void {
  try {
    writeFileAtomically(memoFile(file), Buffer.from(`${JSON.stringify({ id, sha256 })}\n`))
  } catch {
    // A read-only or full cache: the next process hashes again.
  }
}
