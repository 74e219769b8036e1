// A Backing that injects faults into another one, driven by a schedule (the role of QEMU's
// block/blkdebug.c). Deterministic: each read/write/sync call consumes the next action of its
// kind, so a test knows exactly what the device saw.
import os from 'node:os'
import util from 'node:util'
import * as libc from '../../../../../native-shims/libc.js'
import type { Backing, Iovec } from './backing.js'

export type FaultCode = 'EINTR' | 'ENOSPC' | 'EIO'

export type FaultAction =
  /** Pass the call through. */
  | { readonly kind: 'pass' }
  /** Transfer only the first `bytes` bytes (at most what was asked) and return that count. */
  | { readonly kind: 'short'; readonly bytes: number }
  /**
   * Throw an errno error. With `landed`, that many bytes really reach the inner backing first (an
   * ENOSPC or EIO in the middle of a request); EINTR never transfers anything, as in Linux.
   */
  | { readonly kind: 'error'; readonly code: FaultCode; readonly landed?: number }
  /** Sleep `ms` milliseconds, then pass the call through (slow I/O). */
  | { readonly kind: 'delay'; readonly ms: number }
  /**
   * Block in read(2) of `fd` — an eventfd nobody writes: a call stuck in the kernel, as with a
   * hung NFS or FUSE server — then pass through once it is written; a signal makes it fail EINTR.
   */
  | { readonly kind: 'hang'; readonly fd: number }

export type FaultOp = 'read' | 'write' | 'sync'

/** Actions per kind of call, consumed in order; calls past the end pass through. */
export interface FaultSchedule {
  readonly read?: readonly FaultAction[]
  readonly write?: readonly FaultAction[]
  readonly sync?: readonly FaultAction[]
}

/** One call as the faulty backing handled it. */
export interface FaultEvent {
  readonly op: FaultOp
  readonly action: FaultAction
  readonly offset: number
  readonly requested: number
  /** Bytes that reached (or came from) the inner backing. */
  readonly done: number
  readonly error?: FaultCode
}

/** A Node-style errno error, like the ones native-shims throws (`errno` negative). */
export function errnoError(code: string, syscall: string, detail = ''): Error & { code: string; errno: number; syscall: string } {
  const errno = (os.constants.errno as Record<string, number>)[code] ?? 0
  const message = util.getSystemErrorMap().get(-errno)?.[1] ?? code
  return Object.assign(new Error(`${syscall}: ${code} (${message})${detail}`), { code, errno: -errno, syscall })
}

const PASS: FaultAction = { kind: 'pass' }
const sleepCell = new Int32Array(new SharedArrayBuffer(4))

function sleep(ms: number): void {
  if (ms > 0) Atomics.wait(sleepCell, 0, 0, ms)
}

/** What a delay or hang action waits for before the call goes through (a hang may throw EINTR). */
function stall(action: FaultAction): void {
  if (action.kind === 'delay') sleep(action.ms)
  else if (action.kind === 'hang') libc.read(action.fd, new BigUint64Array(1), 8)
}

/** The first `n` bytes of an iovec list. */
export function truncateIovecs(iovecs: readonly Iovec[], n: number): Iovec[] {
  const out: Iovec[] = []
  for (const v of iovecs) {
    if (n <= 0) break
    out.push(v.len <= n ? v : { addr: v.addr, len: n })
    n -= v.len
  }
  return out
}

const total = (iovecs: readonly Iovec[]) => iovecs.reduce((s, v) => s + v.len, 0)

export class FaultyBacking implements Backing {
  readonly events: FaultEvent[] = []
  private readonly queues: Record<FaultOp, FaultAction[]>

  constructor(
    readonly inner: Backing,
    schedule: FaultSchedule = {},
  ) {
    this.queues = { read: [...(schedule.read ?? [])], write: [...(schedule.write ?? [])], sync: [...(schedule.sync ?? [])] }
  }

  get size(): number {
    return this.inner.size
  }

  get readOnly(): boolean {
    return this.inner.readOnly
  }

  /** Appends actions for later calls of `op`. */
  inject(op: FaultOp, ...actions: FaultAction[]): void {
    this.queues[op].push(...actions)
  }

  /** Actions not consumed yet. */
  remaining(op: FaultOp): readonly FaultAction[] {
    return this.queues[op]
  }

  private transfer(op: 'read' | 'write', offset: number, requested: number, doPrefix: (bytes: number) => number): number {
    const action = this.queues[op].shift() ?? PASS
    const log = (done: number, error?: FaultCode) => this.events.push({ op, action, offset, requested, done, ...(error ? { error } : {}) })
    switch (action.kind) {
      case 'delay':
      case 'hang':
      case 'pass': {
        try {
          stall(action)
        } catch (e) {
          log(0, (e as { code?: string }).code === 'EINTR' ? 'EINTR' : 'EIO')
          throw e
        }
        const done = doPrefix(requested)
        log(done)
        return done
      }
      case 'short': {
        const done = doPrefix(Math.max(0, Math.min(action.bytes, requested)))
        log(done)
        return done
      }
      case 'error': {
        const landed = action.code === 'EINTR' ? 0 : Math.max(0, Math.min(action.landed ?? 0, requested))
        const done = landed > 0 ? doPrefix(landed) : 0
        log(done, action.code)
        throw errnoError(action.code, op === 'read' ? 'preadv' : 'pwritev', ' [injected]')
      }
    }
  }

  readAt(buf: Uint8Array, offset: number): number {
    return this.transfer('read', offset, buf.length, (n) => (n === 0 ? 0 : this.inner.readAt(buf.subarray(0, n), offset)))
  }

  writeAt(buf: Uint8Array, offset: number): number {
    return this.transfer('write', offset, buf.length, (n) => (n === 0 ? 0 : this.inner.writeAt(buf.subarray(0, n), offset)))
  }

  preadv(iovecs: readonly Iovec[], offset: number): number {
    return this.transfer('read', offset, total(iovecs), (n) => (n === 0 ? 0 : this.inner.preadv(truncateIovecs(iovecs, n), offset)))
  }

  pwritev(iovecs: readonly Iovec[], offset: number): number {
    return this.transfer('write', offset, total(iovecs), (n) => (n === 0 ? 0 : this.inner.pwritev(truncateIovecs(iovecs, n), offset)))
  }

  syncData(): void {
    const action = this.queues.sync.shift() ?? PASS
    const error = action.kind === 'error' ? action.code : undefined
    this.events.push({ op: 'sync', action, offset: 0, requested: 0, done: 0, ...(error ? { error } : {}) })
    stall(action)
    if (error) throw errnoError(error, 'fdatasync', ' [injected]')
    this.inner.syncData()
  }

  close(): void {
    this.inner.close()
  }
}
