/**
 * Failure dumps on disk: JSON (bigints as decimal strings, bytes as hex) in the project's
 * `node_modules/.cache/ktstr/dumps/` (or the folder `ktstr exec --dump DIR` names), one file per failure.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { FailureDump } from './dump.js'

/** Where a project's dumps go: beside Vitest's own cache. */
export function defaultDumpDir(projectRoot: string): string {
  return path.join(projectRoot, 'node_modules', '.cache', 'ktstr', 'dumps')
}

export function writeDump(dump: FailureDump, dir: string, label: string): string {
  fs.mkdirSync(dir, { recursive: true })
  const stamp = dump.takenAt.replace(/[:.]/g, '-')
  const base = `${label.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'guest'}-${stamp}`
  let file = path.join(dir, `${base}.json`)
  for (let i = 2; fs.existsSync(file); i++) file = path.join(dir, `${base}-${i}.json`)
  fs.writeFileSync(file, `${JSON.stringify(dump, replacer, 2)}\n`)
  return file
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex')
  return v
}
