/**
 * The host end of the guest's snapshot file I/O (runtime/vitest/envelope.ts): snapshot files and
 * inline-snapshot rewrites of test files land in the host's tree, never in the guest's copy.
 * Confined to the project's folders so a confused guest cannot write elsewhere.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import { ENVELOPE_MARK, type HostFsReply, type HostFsRequest } from '../runtime/protocol/vitest-envelope.js'

export async function serveHostFs(req: HostFsRequest, roots: readonly string[]): Promise<HostFsReply> {
  const reply = { [ENVELOPE_MARK]: 'fs-reply', id: req.id } as const
  try {
    const file = confine(req.path, roots)
    switch (req.op) {
      case 'read':
        return { ...reply, ok: true, value: await readOrNull(file) }
      case 'write':
        await fs.mkdir(path.dirname(file), { recursive: true })
        await fs.writeFile(file, req.content, 'utf8')
        return { ...reply, ok: true, value: null }
      case 'remove':
        await fs.rm(file, { force: true })
        return { ...reply, ok: true, value: null }
    }
  } catch (e) {
    return { ...reply, ok: false, message: (e as Error).message }
  }
}

function confine(p: unknown, roots: readonly string[]): string {
  if (typeof p !== 'string' || !path.isAbsolute(p)) throw new Error(`ktstr: snapshot path must be absolute, got ${String(p)}`)
  const file = path.resolve(p)
  const inside = roots.some((r) => {
    const rel = path.relative(r, file)
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)
  })
  if (!inside) throw new Error(`ktstr: refusing snapshot file ${file} outside the project (${roots.join(', ')})`)
  return file
}

async function readOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
}
