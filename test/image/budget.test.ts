/** The initramfs size limit: how much a guest of a given memory can unpack, and the error past it. */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initramfsCapacity, initramfsLimit } from '../../src/image/budget.js'
import { runArchive } from '../../src/image/run-archive.js'
import { KtstrError } from '../../src/util/errors.js'
import { tmpDir } from './helpers.js'

const KiB = 1024
const MiB = 1 << 20
// The base image as built here: 96 MB of archive (see test/image/base.test.ts).
const BASE = { archive: 96_100_572, unpacked: 100 * MiB }

describe('initramfsCapacity', () => {
  // rootfs size= that guests' kernels reported (/proc/mounts): guest MiB, archive bytes, size.
  const measured: [number, number, number][] = [
    [320, 96.1e6, 101056 * KiB],
    [512, 96.1e6, 198144 * KiB],
    [512, 96.1e6 + 64 * MiB, 165372 * KiB],
    [512, 96.1e6 + 72 * MiB, 161276 * KiB],
    [1024, 96.1e6, 455804 * KiB],
    [4096, 96.1e6, 1968632 * KiB],
  ]
  it.each(measured)('stays below what a %i MiB guest with a %d byte archive got, by less than 12 MiB', (mem, archive, rootfs) => {
    const cap = initramfsCapacity(mem, archive)
    expect(cap).toBeLessThanOrEqual(rootfs)
    expect(rootfs - cap).toBeLessThan(12 * MiB)
  })

  it('has no room when the archive takes all the memory', () => {
    expect(initramfsCapacity(256, 1024 * MiB)).toBe(0)
  })
})

describe('initramfsLimit', () => {
  it('accepts the base image alone in a 512 MiB guest and refuses it in 256 MiB, in one line naming the fixes', () => {
    expect(() => initramfsLimit(512, BASE)({ archive: 0, unpacked: 0 })).not.toThrow()
    let e: unknown
    try {
      initramfsLimit(256, BASE)({ archive: 0, unpacked: 0 })
    } catch (x) {
      e = x
    }
    expect(e).toBeInstanceOf(KtstrError)
    const msg = (e as Error).message
    expect(msg).not.toContain('\n')
    expect(msg).toMatch(
      /^the guest image does not fit a 256 MiB guest: the base image \(100 MiB: node, the ktstr runtime and the test's dependencies\) exceed the \d+ MiB it can unpack/,
    )
    expect(msg).toContain('--memory')
    expect(msg).toContain('--disk')
  })
})

describe('runArchive with a size limit', () => {
  let dir: string
  beforeAll(() => {
    dir = fs.realpathSync(tmpDir('budget'))
    fs.mkdirSync(path.join(dir, 'inc'))
    fs.writeFileSync(path.join(dir, 'inc/small.txt'), 'x')
    // 1 GiB, sparse: stat says 1 GiB, the disk holds nothing, and nothing of it is read.
    fs.writeFileSync(path.join(dir, 'inc/big.img'), '')
    fs.truncateSync(path.join(dir, 'inc/big.img'), 1024 * MiB)
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('stops at the first entry past the limit with the one-line error', () => {
    const limit = initramfsLimit(512, BASE)
    let e: unknown
    try {
      runArchive({ data: [], hostPaths: [path.join(dir, 'inc')], limit })
    } catch (x) {
      e = x
    }
    expect(e).toBeInstanceOf(KtstrError)
    expect((e as Error).message).toMatch(
      /^the guest image does not fit a 512 MiB guest: the base image \(100 MiB\) plus the included files \(at least 1024 MiB\) exceed the \d+ MiB it can unpack \(Linux gives the initramfs half of the RAM beside the archive\); give the guest more memory \(--memory, or memory= in a test file\) or put big files on a disk image \(--disk\)$/,
    )
  })

  it('takes the same folder in a guest with memory for it', () => {
    const tree = runArchive({ data: [], hostPaths: [path.join(dir, 'inc')], limit: initramfsLimit(8192, BASE) })
    expect(tree.get(path.join(dir, 'inc/big.img'))).toMatchObject({ kind: 'file', size: 1024 * MiB })
  })
})
