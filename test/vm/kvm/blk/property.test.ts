// Property: for random batches of requests (valid, invalid and malformed chains) against random
// fault schedules, the device never throws, every status and used length matches an independent
// model, reads return what the shadow disk holds (zero-filled after a short read), and at the end
// the file equals the shadow — so every acknowledged write is there.
import fs from 'node:fs'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../../../../src/vm/kvm/virtio/block/constants.js'
import { type FaultAction, FaultyBacking } from '../../../../src/vm/kvm/virtio/block/faulty-backing.js'
import { VIRTQ_DESC_F_NEXT } from '../../../../src/vm/kvm/virtio/queue.js'
import type { BlkReq, GuestDriver } from './driver.js'
import { makeDisk, pattern, RAM_BASE, RAM_SIZE, rig, tempDir } from './setup.js'

const tmp = tempDir()
afterAll(tmp.cleanup)

const CAP = 128 // sectors
const DISK = CAP * 512

type Op =
  | { k: 'write'; sector: number; sectors: number; cuts: number[]; seed: number }
  | { k: 'read'; sector: number; sectors: number; cuts: number[] }
  | { k: 'flush' }
  | { k: 'getid' }
  | { k: 'bad'; variant: number }

const BAD_VARIANTS = 6

const actionArb: fc.Arbitrary<FaultAction> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'pass' } as const) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 5000 }).map((bytes) => ({ kind: 'short', bytes }) as const) },
  { weight: 2, arbitrary: fc.constant({ kind: 'error', code: 'EINTR' } as const) },
  {
    weight: 1,
    arbitrary: fc.record({ code: fc.constantFrom('ENOSPC' as const, 'EIO' as const), landed: fc.integer({ min: 0, max: 4096 }) }).map((e) => ({ kind: 'error', ...e }) as const),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1 }).map((ms) => ({ kind: 'delay', ms }) as const) },
)

const range = {
  sector: fc.integer({ min: 0, max: CAP + 2 }),
  sectors: fc.integer({ min: 1, max: 8 }),
  cuts: fc.array(fc.integer({ min: 1, max: 4095 }), { maxLength: 4 }),
}
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('write' as const), ...range, seed: fc.integer({ min: 0, max: 1 << 20 }) }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('read' as const), ...range }) },
  { weight: 1, arbitrary: fc.constant({ k: 'flush' } as const) },
  { weight: 1, arbitrary: fc.constant({ k: 'getid' } as const) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('bad' as const), variant: fc.integer({ min: 0, max: BAD_VARIANTS - 1 }) }) },
)

/** Segment lengths from cut points inside [0, len). */
function segmentsOf(len: number, cuts: number[]): number[] {
  const points = [...new Set(cuts.filter((c) => c < len))].sort((a, b) => a - b)
  return [...points, len].map((p, i) => p - (i === 0 ? 0 : points[i - 1]!))
}

interface Expected {
  status: number | undefined
  usedLen: number
  /** For a successful read: the bytes the guest must see. */
  data?: Uint8Array
}

/** The model: a shadow disk plus the fault queues, consumed the way the rules say. */
class Model {
  readonly disk = pattern(0, DISK)
  readonly queues: Record<'read' | 'write' | 'sync', FaultAction[]>

  constructor(schedule: { read: FaultAction[]; write: FaultAction[]; sync: FaultAction[] }) {
    this.queues = { read: [...schedule.read], write: [...schedule.write], sync: [...schedule.sync] }
  }

  private next(op: 'read' | 'write' | 'sync'): FaultAction {
    return this.queues[op].shift() ?? { kind: 'pass' }
  }

  write(off: number, data: Uint8Array): Expected {
    let done = 0
    for (;;) {
      const a = this.next('write')
      const rest = data.length - done
      let step = rest
      let failed = false
      if (a.kind === 'short') step = Math.min(a.bytes, rest)
      if (a.kind === 'error') {
        if (a.code === 'EINTR') continue
        step = Math.min(a.landed ?? 0, rest)
        failed = true
      }
      this.disk.set(data.subarray(done, done + step), off + done)
      done += step
      if (failed || step === 0) return { status: VIRTIO_BLK_S_IOERR, usedLen: 1 }
      if (done === data.length) return { status: VIRTIO_BLK_S_OK, usedLen: 1 }
    }
  }

  read(off: number, len: number): Expected {
    for (;;) {
      const a = this.next('read')
      if (a.kind === 'error' && a.code === 'EINTR') continue
      if (a.kind === 'error') return { status: VIRTIO_BLK_S_IOERR, usedLen: 1 }
      const got = a.kind === 'short' ? Math.min(a.bytes, len) : len
      const data = new Uint8Array(len)
      data.set(this.disk.subarray(off, off + got))
      return { status: VIRTIO_BLK_S_OK, usedLen: len + 1, data }
    }
  }

  flush(): Expected {
    for (;;) {
      const a = this.next('sync')
      if (a.kind === 'error' && a.code === 'EINTR') continue
      return a.kind === 'error' ? { status: VIRTIO_BLK_S_IOERR, usedLen: 1 } : { status: VIRTIO_BLK_S_OK, usedLen: 1 }
    }
  }
}

/** Builds a request the validator must reject (no I/O, no fault consumed). */
function badRequest(driver: GuestDriver, variant: number): { req: BlkReq; expected: Expected } {
  const ioerr = { status: VIRTIO_BLK_S_IOERR, usedLen: 1 }
  switch (variant) {
    case 0: {
      // header → status → header …: a loop, so no status byte can be trusted.
      const st = driver.alloc(1, 1)
      driver.ram.write(st, Uint8Array.of(0xff))
      const head = driver.rawChain(
        (l) => [
          { addr: RAM_BASE, len: 16, flags: VIRTQ_DESC_F_NEXT, next: l(1) },
          { addr: st, len: 1, flags: VIRTQ_DESC_F_NEXT | 2, next: l(0) },
        ],
        2,
      )
      return { req: { head, status: st, data: [] }, expected: { status: 0xff, usedLen: 0 } }
    }
    case 1:
      return { req: driver.request(VIRTIO_BLK_T_IN, 0, [{ len: 512, write: true, addr: RAM_BASE + RAM_SIZE - 256 }]), expected: ioerr }
    case 2:
      return { req: driver.request(VIRTIO_BLK_T_IN, 0, [{ len: 512 }]), expected: ioerr }
    case 3:
      return { req: driver.request(0x1234, 0, [{ len: 512, write: true }]), expected: { status: VIRTIO_BLK_S_UNSUPP, usedLen: 1 } }
    case 4:
      return { req: driver.request(VIRTIO_BLK_T_OUT, 0, [{ len: 512, data: new Uint8Array(512) }, { len: 0 }]), expected: ioerr }
    default:
      return { req: driver.request(VIRTIO_BLK_T_OUT, 1, [{ len: 100, data: new Uint8Array(100) }]), expected: ioerr }
  }
}

let run = 0

/** Fast byte comparison (toEqual on large typed arrays is slow) that names the first difference. */
function expectSameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  if (Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))) return
  let i = 0
  while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++
  expect.fail(`${what}: ${got.length} vs ${want.length} bytes, first difference at byte ${i} (${got[i]} vs ${want[i]})`)
}

describe('virtio-blk under random requests and fault schedules', () => {
  it('matches the shadow model and loses no acknowledged write', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }),
        fc.record({ read: fc.array(actionArb, { maxLength: 12 }), write: fc.array(actionArb, { maxLength: 12 }), sync: fc.array(actionArb, { maxLength: 4 }) }),
        (batches, schedule) => {
          const path = makeDisk(tmp.dir, DISK, `prop-${run++}.img`)
          const r = rig(path, { queueSize: 64, serial: 'prop', wrap: (b) => new FaultyBacking(b, schedule) })
          const model = new Model(schedule)
          try {
            for (const batch of batches) {
              const reqs = batch.map((op): { req: BlkReq; expected: Expected } => {
                switch (op.k) {
                  case 'write':
                  case 'read': {
                    const len = op.sectors * 512
                    const inRange = op.sector + op.sectors <= CAP
                    const lens = segmentsOf(len, op.cuts)
                    if (op.k === 'write') {
                      const data = pattern(op.seed, len)
                      let pos = 0
                      const parts = lens.map((l) => ({ len: l, data: data.subarray(pos, (pos += l)) }))
                      const req = r.driver.request(VIRTIO_BLK_T_OUT, op.sector, parts)
                      return { req, expected: inRange ? model.write(op.sector * 512, data) : { status: VIRTIO_BLK_S_IOERR, usedLen: 1 } }
                    }
                    const req = r.driver.request(
                      VIRTIO_BLK_T_IN,
                      op.sector,
                      lens.map((l) => ({ len: l, write: true })),
                    )
                    return { req, expected: inRange ? model.read(op.sector * 512, len) : { status: VIRTIO_BLK_S_IOERR, usedLen: 1 } }
                  }
                  case 'flush':
                    return { req: r.driver.request(VIRTIO_BLK_T_FLUSH, 0, []), expected: model.flush() }
                  case 'getid':
                    return { req: r.driver.request(VIRTIO_BLK_T_GET_ID, 0, [{ len: 20, write: true }]), expected: { status: VIRTIO_BLK_S_OK, usedLen: 21 } }
                  case 'bad':
                    return badRequest(r.driver, op.variant)
                }
              })
              const used = r.run(...reqs.map((q) => q.req.head))
              expect(used.map((u) => u.id)).toEqual(reqs.map((q) => q.req.head))
              reqs.forEach(({ req, expected }, i) => {
                expect(used[i]!.len).toBe(expected.usedLen)
                expect(r.driver.status(req)).toBe(expected.status)
                if (expected.data) expectSameBytes(r.driver.data(req), expected.data, `read of request ${i}`)
              })
              r.driver.reset()
            }
            // The schedules were consumed exactly as the model consumed them.
            for (const op of ['read', 'write', 'sync'] as const) expect((r.backing as FaultyBacking).remaining(op)).toEqual(model.queues[op])
            expectSameBytes(fs.readFileSync(path), model.disk, 'disk file')
          } finally {
            r.backing.close()
            fs.rmSync(path)
          }
        },
      ),
      { numRuns: 150 },
    )
  })
})
