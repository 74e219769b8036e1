// The I/O rules under injected faults: short writes are retried and advanced, EINTR is retried,
// ENOSPC/EIO/no progress are S_IOERR, a short read zero-fills the tail, FLUSH is fdatasync.
import fs from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { KtstrError } from '../../../../src/util/errors.js'
import { FileBacking } from '../../../../src/vm/kvm/virtio/block/backing.js'
import { describeBacking, openBacking } from '../../../../src/vm/kvm/virtio/block/backing-spec.js'
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from '../../../../src/vm/kvm/virtio/block/constants.js'
import { type FaultAction, FaultyBacking, truncateIovecs } from '../../../../src/vm/kvm/virtio/block/faulty-backing.js'
import { advanceIovecs, MAX_EINTR_RETRIES } from '../../../../src/vm/kvm/virtio/block/io.js'
import { makeDisk, pattern, rig, tempDir } from './setup.js'

const tmp = tempDir()
afterAll(tmp.cleanup)
let n = 0
const freshDisk = () => makeDisk(tmp.dir, 1 << 20, `io-${n++}.img`)

function faulty(schedule: { read?: FaultAction[]; write?: FaultAction[]; sync?: FaultAction[] }) {
  const path = freshDisk()
  const r = rig(path, { wrap: (b) => new FaultyBacking(b, schedule) })
  return { ...r, path, fb: r.backing as FaultyBacking, file: () => new Uint8Array(fs.readFileSync(path)) }
}

describe('iovec helpers', () => {
  const iov = [
    { addr: 1000n, len: 100 },
    { addr: 5000n, len: 50 },
    { addr: 9000n, len: 10 },
  ]
  it('advanceIovecs skips whole and partial iovecs', () => {
    expect(advanceIovecs(iov, 0)).toEqual(iov)
    expect(advanceIovecs(iov, 30)).toEqual([{ addr: 1030n, len: 70 }, iov[1], iov[2]])
    expect(advanceIovecs(iov, 100)).toEqual([iov[1], iov[2]])
    expect(advanceIovecs(iov, 149)).toEqual([{ addr: 5049n, len: 1 }, iov[2]])
    expect(advanceIovecs(iov, 160)).toEqual([])
  })
  it('truncateIovecs keeps a prefix', () => {
    expect(truncateIovecs(iov, 0)).toEqual([])
    expect(truncateIovecs(iov, 120)).toEqual([iov[0], { addr: 5000n, len: 20 }])
    expect(truncateIovecs(iov, 500)).toEqual(iov)
  })
})

describe('writes', () => {
  it('retry short writes, advancing offset and iovecs, until every byte landed', () => {
    const f = faulty({
      write: [
        { kind: 'short', bytes: 512 },
        { kind: 'short', bytes: 100 },
        { kind: 'short', bytes: 1000 },
      ],
    })
    const data = pattern(77_777, 4096)
    const w = f.driver.write(8, data, 3)
    expect(f.run(w.head)).toEqual([{ id: w.head, len: 1 }])
    expect(f.driver.status(w)).toBe(VIRTIO_BLK_S_OK)
    expect(f.fb.events.map((e) => [e.offset, e.requested, e.done])).toEqual([
      [4096, 4096, 512],
      [4608, 3584, 100],
      [4708, 3484, 1000],
      [5708, 2484, 2484],
    ])
    expect(f.file().subarray(4096, 8192)).toEqual(data)
  })

  it('retry EINTR', () => {
    const eintr: FaultAction = { kind: 'error', code: 'EINTR' }
    const f = faulty({ write: [eintr, eintr, { kind: 'short', bytes: 700 }, eintr] })
    const data = pattern(5, 2048)
    const w = f.driver.write(0, data, 2)
    f.run(w.head)
    expect(f.driver.status(w)).toBe(VIRTIO_BLK_S_OK)
    expect(f.file().subarray(0, 2048)).toEqual(data)
    expect(f.fb.events.filter((e) => e.error === 'EINTR')).toHaveLength(3)
  })

  it('ENOSPC in the middle of a request is S_IOERR (some bytes may have landed)', () => {
    const f = faulty({
      write: [
        { kind: 'short', bytes: 1024 },
        { kind: 'error', code: 'ENOSPC', landed: 512 },
      ],
    })
    const before = f.file()
    const data = new Uint8Array(4096).fill(0xab)
    const w = f.driver.write(16, data)
    f.run(w.head)
    expect(f.driver.status(w)).toBe(VIRTIO_BLK_S_IOERR)
    const after = f.file()
    expect(after.subarray(8192, 8192 + 1536)).toEqual(data.subarray(0, 1536))
    expect(after.subarray(8192 + 1536, 8192 + 4096)).toEqual(before.subarray(8192 + 1536, 8192 + 4096))
    // The queue goes on: the next write succeeds.
    const w2 = f.driver.write(16, data)
    f.run(w2.head)
    expect(f.driver.status(w2)).toBe(VIRTIO_BLK_S_OK)
  })

  it('EIO and a write that makes no progress are S_IOERR', () => {
    const f = faulty({
      write: [
        { kind: 'error', code: 'EIO' },
        { kind: 'short', bytes: 0 },
      ],
    })
    const a = f.driver.write(0, new Uint8Array(512))
    const b = f.driver.write(1, new Uint8Array(512))
    f.run(a.head, b.head)
    expect([f.driver.status(a), f.driver.status(b)]).toEqual([VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR])
    expect(f.fb.events).toHaveLength(2) // no retry after an error or zero progress
  })

  it('gives up on a backing that only ever says EINTR', () => {
    const f = faulty({ write: Array.from({ length: MAX_EINTR_RETRIES + 5 }, () => ({ kind: 'error', code: 'EINTR' }) as const) })
    const w = f.driver.write(0, new Uint8Array(512))
    f.run(w.head)
    expect(f.driver.status(w)).toBe(VIRTIO_BLK_S_IOERR)
    expect(f.fb.events).toHaveLength(MAX_EINTR_RETRIES + 1)
  })
})

describe('reads', () => {
  it('a short read is end of file: the tail is zero-filled, not retried', () => {
    const f = faulty({ read: [{ kind: 'short', bytes: 700 }] })
    const r = f.driver.read(10, 2048, 3)
    expect(f.run(r.head)).toEqual([{ id: r.head, len: 2049 }])
    expect(f.driver.status(r)).toBe(VIRTIO_BLK_S_OK)
    const got = f.driver.data(r)
    expect(got.subarray(0, 700)).toEqual(pattern(10 * 512, 700))
    expect(got.subarray(700).every((b) => b === 0)).toBe(true)
    expect(f.fb.events).toHaveLength(1)
  })

  it('EINTR is retried; EIO is S_IOERR', () => {
    const f = faulty({ read: [{ kind: 'error', code: 'EINTR' }, { kind: 'error', code: 'EINTR' }, { kind: 'pass' }, { kind: 'error', code: 'EIO' }] })
    const a = f.driver.read(1, 1024)
    const b = f.driver.read(2, 1024)
    const used = f.run(a.head, b.head)
    expect(used).toEqual([
      { id: a.head, len: 1025 },
      { id: b.head, len: 1 },
    ])
    expect(f.driver.data(a)).toEqual(pattern(512, 1024))
    expect([f.driver.status(a), f.driver.status(b)]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR])
  })

  it('slow I/O only delays', () => {
    const f = faulty({ read: [{ kind: 'delay', ms: 60 }] })
    const r = f.driver.read(0, 512)
    const t0 = performance.now()
    f.run(r.head)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55)
    expect(f.driver.status(r)).toBe(VIRTIO_BLK_S_OK)
    expect(f.driver.data(r)).toEqual(pattern(0, 512))
  })
})

describe('flush', () => {
  it('is fdatasync: EINTR retried, EIO reported', () => {
    const f = faulty({ sync: [{ kind: 'error', code: 'EINTR' }, { kind: 'pass' }, { kind: 'error', code: 'EIO' }] })
    const a = f.driver.flush()
    const b = f.driver.flush()
    f.run(a.head, b.head)
    expect([f.driver.status(a), f.driver.status(b)]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR])
    expect(f.fb.events.map((e) => e.error ?? 'ok')).toEqual(['EINTR', 'ok', 'EIO'])
  })
})

describe('FileBacking', () => {
  it('does vectored I/O straight into guest RAM and reports size', () => {
    const path = makeDisk(tmp.dir, 10_000, 'fb.img')
    const r = rig(path)
    const b = FileBacking.open(path)
    expect(b.size).toBe(10_000)
    expect(b.readOnly).toBe(false)
    const g1 = r.driver.alloc(100)
    const g2 = r.driver.alloc(50)
    const iov = [
      { addr: r.ram.hostAddress(g1, 100), len: 100 },
      { addr: r.ram.hostAddress(g2, 50), len: 50 },
    ]
    expect(b.preadv(iov, 9_900)).toBe(100) // short at end of file
    const got = new Uint8Array(100)
    r.ram.read(g1, got)
    expect(got).toEqual(pattern(9_900, 100))
    r.ram.write(g2, new Uint8Array(50).fill(3))
    expect(b.pwritev([iov[1]!], 0)).toBe(50)
    b.syncData()
    const buf = new Uint8Array(60)
    expect(b.readAt(buf, 0)).toBe(60)
    expect([...buf.subarray(0, 50)]).toEqual(Array(50).fill(3))
    expect(b.writeAt(Uint8Array.of(1, 2), 10_000)).toBe(2)
    b.close()
    b.close() // idempotent
    expect(fs.statSync(path).size).toBe(10_002)
  })

  it('read-only backings refuse writes; missing files are a KtstrError', () => {
    const path = makeDisk(tmp.dir, 4096, 'ro.img')
    const b = FileBacking.open(path, { readOnly: true })
    expect(() => b.writeAt(new Uint8Array(1), 0)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    b.close()
    expect(() => FileBacking.open(`${tmp.dir}/nope.img`)).toThrow(KtstrError)
    expect(describeBacking({ kind: 'faulty', inner: { kind: 'file', path, readOnly: true }, schedule: {} })).toEqual({ size: 4096, readOnly: true })
    const fb = openBacking({ kind: 'faulty', inner: { kind: 'file', path }, schedule: { read: [{ kind: 'error', code: 'EIO' }] } })
    expect(fb).toBeInstanceOf(FaultyBacking)
    expect(() => fb.readAt(new Uint8Array(4), 0)).toThrow(expect.objectContaining({ code: 'EIO', errno: -5 }))
    expect(fb.readAt(new Uint8Array(4), 0)).toBe(4)
    fb.close()
  })
})
