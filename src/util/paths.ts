import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** `$XDG_CACHE_HOME/ktstr` (default `~/.cache/ktstr`). */
export function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(base, 'ktstr')
}

let root: string | undefined
/** The ktstr package root (the folder whose package.json is named ktstr), found from this file. */
export function packageRoot(): string {
  if (root) return root
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pj = path.join(dir, 'package.json')
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'ktstr') return (root = dir)
    const up = path.dirname(dir)
    if (up === dir) throw new Error(`ktstr package.json not found above ${fileURLToPath(import.meta.url)}`)
    dir = up
  }
}
