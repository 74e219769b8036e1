// memoByFile (src/util/file-memo.ts) beyond the hash (test/util/file-hash.test.ts drives the rest):
// each kind keeps its own value for the same file, and a memo that is not a value of its kind is
// worked out again. Each "process" is a fresh copy of the module, so only the memo on disk carries over.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-file-memo-'))
const savedXdg = process.env.XDG_CACHE_HOME
beforeAll(() => {
  process.env.XDG_CACHE_HOME = path.join(dir, 'cache')
})
afterAll(() => {
  if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME
  else process.env.XDG_CACHE_HOME = savedXdg
  fs.rmSync(dir, { recursive: true, force: true })
})

async function freshProcess(): Promise<typeof import('../../src/util/file-memo.js')> {
  vi.resetModules()
  return import('../../src/util/file-memo.js')
}

const isList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string')
const isNumber = (v: unknown): v is number => typeof v === 'number'

describe('memoByFile', () => {
  it('works a value out once per file and kind, also across processes; kinds do not mix', async () => {
    const f = path.join(dir, 'busybox')
    fs.writeFileSync(f, 'a binary')
    const calls: string[] = []
    const list = () => (calls.push('list'), ['sh', 'ls'])
    const size = () => (calls.push('size'), 8)

    const first = await freshProcess()
    expect(first.memoByFile('applets', f, list, isList)).toEqual(['sh', 'ls'])
    expect(first.memoByFile('applets', f, list, isList)).toEqual(['sh', 'ls'])
    expect(first.memoByFile('sizes', f, size, isNumber)).toBe(8)
    expect(calls).toEqual(['list', 'size'])

    const second = await freshProcess()
    expect(second.memoByFile('applets', f, list, isList)).toEqual(['sh', 'ls'])
    expect(second.memoByFile('sizes', f, size, isNumber)).toBe(8)
    expect(calls).toEqual(['list', 'size'])
  })

  it('works it out again when the memo on disk is not a value of its kind', async () => {
    const f = path.join(dir, 'other')
    fs.writeFileSync(f, 'x')
    ;(await freshProcess()).memoByFile('applets', f, () => ['a'], isList)
    const memoDir = path.join(dir, 'cache', 'ktstr', 'applets')
    const memo = fs
      .readdirSync(memoDir)
      .map((m) => path.join(memoDir, m))
      .find((m) => fs.readFileSync(m, 'utf8').includes(path.resolve(f)))!
    const v = JSON.parse(fs.readFileSync(memo, 'utf8'))
    fs.writeFileSync(memo, JSON.stringify({ ...v, value: [1, 2] }))
    expect((await freshProcess()).memoByFile('applets', f, () => ['b'], isList)).toEqual(['b'])
    expect(JSON.parse(fs.readFileSync(memo, 'utf8')).value).toEqual(['b'])
  })
})
