import { createHash } from 'node:crypto'
import fs from 'node:fs'

const hashes = new Map<string, string>()

/** sha256 of a file, remembered in this process while its size and mtime stay the same. */
export function fileSha256(file: string): string {
  const st = fs.statSync(file)
  const id = `${file}:${st.size}:${st.mtimeMs}`
  let h = hashes.get(id)
  if (!h) {
    h = createHash('sha256').update(fs.readFileSync(file)).digest('hex')
    hashes.set(id, h)
  }
  return h
}
