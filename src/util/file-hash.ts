import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { memoByFile } from './file-memo.js'

const isSha256 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)

/**
 * sha256 of a file. Hashing a 10 MB kernel costs ~25 ms, which every warm start would wait for
 * (its snapshot key names the kernel by content), so the hash is remembered while the file stays
 * the same one (memoByFile).
 */
export function fileSha256(file: string): string {
  return memoByFile('hashes', file, () => createHash('sha256').update(fs.readFileSync(file)).digest('hex'), isSha256)
}
