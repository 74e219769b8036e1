/**
 * The snapshot file bridge (plugin/host-fs.ts) against a real project folder on disk: a guest may
 * read, write and remove its test file's snapshot file and rewrite the test file itself, and nothing
 * else — not `.git/hooks`, not `..`, not through a symlink.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type SnapshotScope, serveHostFs } from '../../plugin/host-fs.js'
import { parseHostFsRequest } from '../../runtime/protocol/guest-schema.js'
import { ENVELOPE_MARK, type HostFsOp, type HostFsReply, MalformedMessage } from '../../runtime/protocol/index.js'

let base: string
let root: string
let outside: string
let testFile: string
let snap: string

beforeEach(() => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-hostfs-')))
  root = path.join(base, 'project')
  outside = path.join(base, 'outside')
  fs.mkdirSync(path.join(root, '.git', 'hooks'), { recursive: true })
  fs.mkdirSync(outside)
  testFile = path.join(root, 'a.sched.test.ts')
  fs.writeFileSync(testFile, "test('x', () => expect(1).toMatchInlineSnapshot())\n")
  snap = path.join(root, '__snapshots__', 'a.sched.test.ts.snap')
})
afterEach(() => fs.rmSync(base, { recursive: true, force: true }))

/** Vitest's default resolveSnapshotPath. */
const defaultSnapshotPath = (f: string) => path.join(path.dirname(f), '__snapshots__', `${path.basename(f)}.snap`)

function scope(testFiles = [testFile], snapshotPath = defaultSnapshotPath): SnapshotScope {
  return { roots: [root], testFiles, snapshotPath }
}

let id = 0
/** One request through the bridge as the pool serves it (schema check, then serveHostFs). */
async function ask(op: HostFsOp, s = scope()): Promise<HostFsReply> {
  const req = parseHostFsRequest({ [ENVELOPE_MARK]: 'fs', id: ++id, ...op })
  const reply = await serveHostFs(req, s)
  expect(reply.id).toBe(id)
  if (!reply.ok) expect(reply.message).not.toContain('\n')
  return reply
}
const refused = async (op: HostFsOp, s?: SnapshotScope) => {
  const reply = await ask(op, s)
  expect(reply.ok).toBe(false)
  return reply.ok ? '' : reply.message
}
/** Every file under `dir`, symlinks not followed. */
const tree = (dir: string): string[] =>
  fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort()

describe('what a guest may do', () => {
  it('writes, reads and removes its snapshot file (creating __snapshots__)', async () => {
    expect(await ask({ op: 'read', path: snap })).toMatchObject({ ok: true, value: null })
    expect(await ask({ op: 'write', path: snap, content: 'exports[`x 1`] = `1`;\n' })).toMatchObject({ ok: true })
    expect(fs.readFileSync(snap, 'utf8')).toBe('exports[`x 1`] = `1`;\n')
    expect(await ask({ op: 'read', path: snap })).toMatchObject({ ok: true, value: 'exports[`x 1`] = `1`;\n' })
    expect(await ask({ op: 'remove', path: snap })).toMatchObject({ ok: true })
    expect(fs.existsSync(snap)).toBe(false)
    expect(await ask({ op: 'remove', path: snap })).toMatchObject({ ok: true }) // already gone: fine
  })

  it('reads and rewrites the running test file for inline snapshots', async () => {
    const code = await ask({ op: 'read', path: testFile })
    expect(code).toMatchObject({ ok: true, value: expect.stringContaining('toMatchInlineSnapshot()') })
    expect(await ask({ op: 'write', path: testFile, content: 'rewritten\n' })).toMatchObject({ ok: true })
    expect(fs.readFileSync(testFile, 'utf8')).toBe('rewritten\n')
  })

  it("follows the project's own resolveSnapshotPath, and symlinks that stay inside the project", async () => {
    fs.mkdirSync(path.join(root, 'snaps-real'))
    fs.symlinkSync(path.join(root, 'snaps-real'), path.join(root, 'snaps'))
    const custom = scope([testFile], (f) => path.join(root, 'snaps', `${path.basename(f)}.snap`))
    const p = path.join(root, 'snaps', 'a.sched.test.ts.snap')
    expect(await ask({ op: 'write', path: p, content: 'x' }, custom)).toMatchObject({ ok: true })
    expect(fs.readFileSync(path.join(root, 'snaps-real', 'a.sched.test.ts.snap'), 'utf8')).toBe('x')
    expect(await refused({ op: 'write', path: snap, content: 'x' }, custom)).toMatch(/refusing to write/)
  })
})

describe('what a guest may not do', () => {
  it('write a git hook, or any other project file', async () => {
    const hook = path.join(root, '.git', 'hooks', 'pre-commit')
    expect(await refused({ op: 'write', path: hook, content: '#!/bin/sh\ntouch /tmp/pwned\n' })).toBe(
      `ktstr: refusing to write "${hook}" for the guest: it may write only the snapshot file of the test file it runs (${snap}) and that test file (inline snapshots); toMatchFileSnapshot is not supported in ktstr guests`,
    )
    expect(await refused({ op: 'write', path: path.join(root, 'package.json'), content: '{}' })).toMatch(/refusing to write/)
    expect(await refused({ op: 'read', path: path.join(root, '.git', 'config') })).toMatch(/refusing to read/)
    expect(fs.existsSync(hook)).toBe(false)
    expect(fs.existsSync(path.join(root, 'package.json'))).toBe(false)
  })

  it('remove anything but its snapshot file (not even the test file)', async () => {
    expect(await refused({ op: 'remove', path: testFile })).toMatch(/may remove only the snapshot file of the test file it runs \(.*\);/)
    expect(fs.existsSync(testFile)).toBe(true)
  })

  it('leave the project with .. or a relative path', async () => {
    const dotdot = path.join(root, '__snapshots__', '..', '..', 'outside', 'x.snap')
    expect(await refused({ op: 'write', path: dotdot, content: 'x' })).toMatch(/refusing to write/)
    expect(await refused({ op: 'write', path: `${root}/../x`, content: 'x' })).toMatch(/refusing to write/)
    expect(await refused({ op: 'write', path: '__snapshots__/a.sched.test.ts.snap', content: 'x' })).toMatch(/refusing to write "__snapshots__/)
    expect(await refused({ op: 'read', path: '/etc/passwd' })).toMatch(/refusing to read/)
    expect(tree(outside)).toEqual([])
    expect(fs.existsSync(path.join(base, 'x'))).toBe(false)
  })

  it('escape through a symlinked folder inside the project', async () => {
    fs.symlinkSync(outside, path.join(root, 'linked'))
    const linkedTest = path.join(root, 'linked', 'b.sched.test.ts')
    fs.writeFileSync(path.join(outside, 'b.sched.test.ts'), 'original\n')
    const s = scope([linkedTest])
    const linkedSnap = path.join(root, 'linked', '__snapshots__', 'b.sched.test.ts.snap')
    expect(await refused({ op: 'write', path: linkedSnap, content: 'x' }, s)).toBe(
      `ktstr: refusing to write ${linkedSnap} for the guest: its folder leads outside the project (to ${outside}, through a symlink)`,
    )
    expect(await refused({ op: 'write', path: linkedTest, content: 'x' }, s)).toMatch(/leads outside the project/)
    expect(await refused({ op: 'read', path: linkedTest }, s)).toMatch(/leads outside the project/)
    expect(tree(outside)).toEqual(['b.sched.test.ts'])
    expect(fs.readFileSync(path.join(outside, 'b.sched.test.ts'), 'utf8')).toBe('original\n')
  })

  it('escape through a symlinked __snapshots__', async () => {
    fs.symlinkSync(outside, path.join(root, '__snapshots__'))
    expect(await refused({ op: 'write', path: snap, content: 'x' })).toMatch(/its folder leads outside the project/)
    expect(await refused({ op: 'remove', path: snap })).toMatch(/its folder leads outside the project/)
    expect(tree(outside)).toEqual([])
  })

  it('write, read or remove through a snapshot file that is a symlink', async () => {
    fs.mkdirSync(path.dirname(snap))
    const victim = path.join(root, '.git', 'hooks', 'pre-commit')
    fs.writeFileSync(victim, 'hook\n')
    fs.symlinkSync(victim, snap)
    for (const op of [
      { op: 'write', path: snap, content: 'x' },
      { op: 'read', path: snap },
      { op: 'remove', path: snap },
    ] as HostFsOp[]) {
      expect(await refused(op)).toBe(`ktstr: refusing to ${op.op} ${snap} for the guest: it is a symlink; snapshot files must be regular files`)
    }
    expect(fs.readFileSync(victim, 'utf8')).toBe('hook\n')
    expect(fs.lstatSync(snap).isSymbolicLink()).toBe(true)
  })

  it('write over something that is not a regular file', async () => {
    fs.mkdirSync(snap, { recursive: true })
    expect(await refused({ op: 'write', path: snap, content: 'x' })).toMatch(/it is not a regular file/)
  })

  it('touch anything when no test file is running', async () => {
    expect(await refused({ op: 'write', path: snap, content: 'x' }, scope([]))).toMatch(/for the guest: no test file is running;/)
  })

  it('send a path that is not a string (refused before the bridge, as a malformed message)', () => {
    for (const p of [5, null, ['/etc/passwd'], { toString: () => '/x' }]) {
      expect(() => parseHostFsRequest({ [ENVELOPE_MARK]: 'fs', id: 1, op: 'read', path: p })).toThrow(MalformedMessage)
    }
    expect(() => parseHostFsRequest({ [ENVELOPE_MARK]: 'fs', id: 1, op: 'write', path: snap, content: 7 })).toThrow(
      'guest sent a malformed fs message: content: expected string, got 7',
    )
  })
})
