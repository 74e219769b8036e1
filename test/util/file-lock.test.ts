/** Lock files for the caches: OFD locks, shared and exclusive, freed by a dying holder. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FileLock } from '../../src/util/file-lock.js'

let dir: string
let file: string
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-lock-'))
  file = path.join(dir, 'x.lock')
})
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('FileLock', () => {
  it('excludes a second holder, also within one process, and writes the holder pid', () => {
    const a = FileLock.tryAcquire(file, 'exclusive')!
    expect(a).toBeDefined()
    expect(FileLock.tryAcquire(file, 'exclusive')).toBeUndefined()
    expect(FileLock.tryAcquire(file, 'shared')).toBeUndefined()
    expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
    a.release()
    const b = FileLock.tryAcquire(file, 'exclusive')
    expect(b).toBeDefined()
    b!.release()
  })

  it('lets shared holders share and keeps an exclusive one out until the last leaves', () => {
    const a = FileLock.tryAcquire(file, 'shared')!
    const b = FileLock.tryAcquire(file, 'shared')!
    expect(a && b).toBeDefined()
    expect(FileLock.tryAcquire(file, 'exclusive')).toBeUndefined()
    a.release()
    expect(FileLock.tryAcquire(file, 'exclusive')).toBeUndefined()
    b.release()
    FileLock.tryAcquire(file, 'exclusive')!.release()
  })

  it('acquire waits for the holder, telling onWait its pid once', async () => {
    const a = FileLock.tryAcquire(file, 'exclusive')!
    const waits: (number | undefined)[] = []
    let got = false
    const b = FileLock.acquire(file, 'exclusive', { onWait: (pid) => waits.push(pid) }).then((l) => ((got = true), l))
    while (waits.length === 0) await new Promise((r) => setTimeout(r, 5))
    expect(waits).toEqual([process.pid])
    expect(got).toBe(false)
    a.release()
    ;(await b).release()
    expect(waits).toHaveLength(1)
  })

  it('a waiter on a removed lock file locks the new file, not the removed one', async () => {
    const a = FileLock.tryAcquire(file, 'exclusive')!
    let waiting = false
    const b = FileLock.acquire(file, 'exclusive', { onWait: () => (waiting = true) })
    while (!waiting) await new Promise((r) => setTimeout(r, 5)) // b met a's lock and polls
    a.remove()
    const held = await b
    expect(fs.existsSync(file)).toBe(true)
    expect(FileLock.tryAcquire(file, 'exclusive')).toBeUndefined() // the file at the path is really held
    held.release()
  })
})
