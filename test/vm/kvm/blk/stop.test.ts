// Stopping a blk thread that is stuck in a backing call (a hung NFS or FUSE server, played
// by a faulty backing blocked in read() of an eventfd nobody writes): the device's reset and
// close() return within their bound, and afterwards the thread is gone and every descriptor it
// or the device opened is closed — counted in /proc/self.
import fs from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { EFD_CLOEXEC } from '../../../../native-shims/constants.js'
import * as libc from '../../../../native-shims/libc.js'
import { FileBacking } from '../../../../src/vm/kvm/virtio/block/backing.js'
import type { BackingSpec } from '../../../../src/vm/kvm/virtio/block/backing-spec.js'
import { VirtioBlkDevice } from '../../../../src/vm/kvm/virtio/block/device.js'
import { newFds, newThreads, resources, threadBlockedInRead } from '../resources.js'
import { GuestDriver } from './driver.js'
import { FEATURES, guestRam, makeDisk, RAM_BASE, RAM_SIZE, tempDir, threadSkipReason } from './setup.js'

const skip = threadSkipReason()
const tmp = tempDir()
afterAll(tmp.cleanup)

async function until(what: string, probe: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/**
 * A device whose first read hangs, activated with a request in flight; resolves once the blk thread
 * thread is blocked in the backing call. `inner` is the file spec (its own open, or a borrowed fd).
 */
async function stuckDevice(inner: BackingSpec, hangFd: number) {
  const { ram } = guestRam()
  const driver = new GuestDriver(ram, { queueSize: 16, base: RAM_BASE, size: RAM_SIZE })
  const failures: string[] = []
  const dev = new VirtioBlkDevice({ backing: { kind: 'faulty', inner, schedule: { read: [{ kind: 'hang', fd: hangFd }] } }, ram, stopTimeoutMs: 300 })
  dev.activate({
    features: FEATURES,
    queues: [driver.config],
    signalUsed: () => {},
    interruptStatus: new Int32Array(new SharedArrayBuffer(4)),
    fail: (w) => failures.push(w),
  })
  await dev.whenStarted()
  driver.publish(driver.read(0, 4096).head)
  dev.queueNotify(0)
  await until('the blk thread to block in the hanging backing call', () => threadBlockedInRead(hangFd))
  return { dev, driver, failures }
}

describe.skipIf(skip !== undefined)('virtio-blk thread stuck in a backing call', () => {
  it('close() interrupts it and releases the thread and the backing the blk thread opened', async () => {
    const disk = makeDisk(tmp.dir, 1 << 20, 'opened-by-thread.img')
    const hangFd = libc.eventfd(0, EFD_CLOEXEC)
    const before = resources()
    const s = await stuckDevice({ kind: 'file', path: disk }, hangFd)
    expect(newThreads(before).length).toBeGreaterThan(0) // the blk thread
    expect(newFds(before).filter((f) => f.endsWith(disk))).toHaveLength(1) // the backing it opened

    // Without the bound this never returned: the thread never leaves the read.
    await s.dev.close()
    expect(s.dev.liveThreads).toBe(0)
    expect(newFds(before)).toEqual([]) // the backing fd and the device's own kick eventfd
    expect(newThreads(before)).toEqual([])
    libc.close(hangFd)
  })

  it('a device reset gives up after stopTimeoutMs; close() then stops it; the VMM-owned fd stays open for its owner', async () => {
    const disk = makeDisk(tmp.dir, 1 << 20, 'borrowed.img')
    const owned = FileBacking.open(disk)
    const hangFd = libc.eventfd(0, EFD_CLOEXEC)
    const before = resources()
    const s = await stuckDevice({ kind: 'file', path: disk, fd: owned.fd }, hangFd)
    s.dev.reset() // blocks at most stopTimeoutMs, then lets the stop go on in the background
    expect(s.dev.active).toBe(false)
    await s.dev.close()
    expect(newThreads(before)).toEqual([])
    expect(newFds(before)).toEqual([])
    expect(fs.readlinkSync(`/proc/self/fd/${owned.fd}`)).toBe(disk) // borrowed: not closed by the blk thread
    owned.close()
    libc.close(hangFd)
  })

  it("the final fdatasync at stop hangs: close() still returns, the blk thread's backing closed", async () => {
    const disk = makeDisk(tmp.dir, 1 << 20, 'sync-hangs.img')
    const hangFd = libc.eventfd(0, EFD_CLOEXEC)
    const { ram } = guestRam()
    const driver = new GuestDriver(ram, { queueSize: 16, base: RAM_BASE, size: RAM_SIZE })
    const before = resources()
    const dev = new VirtioBlkDevice({
      backing: { kind: 'faulty', inner: { kind: 'file', path: disk }, schedule: { sync: [{ kind: 'hang', fd: hangFd }] } },
      ram,
      stopTimeoutMs: 300,
    })
    dev.activate({
      features: FEATURES,
      queues: [driver.config],
      signalUsed: () => {},
      interruptStatus: new Int32Array(new SharedArrayBuffer(4)),
      fail: () => {},
    })
    await dev.whenStarted()
    const closing = dev.close() // the blk thread leaves its loop and syncs the writable backing: that hangs
    await until('the sync to hang', () => threadBlockedInRead(hangFd)) // close() is still waiting then
    await closing
    expect(newThreads(before)).toEqual([])
    expect(newFds(before)).toEqual([])
    libc.close(hangFd)
  })

  it('a blk thread whose hang ends by itself finishes the request and stops normally', async () => {
    const disk = makeDisk(tmp.dir, 1 << 20, 'recovers.img')
    const hangFd = libc.eventfd(0, EFD_CLOEXEC)
    const before = resources()
    const s = await stuckDevice({ kind: 'file', path: disk }, hangFd)
    libc.signalEventfd(hangFd) // the server comes back
    await until('the completion', () => s.driver.usedIdx() === 1)
    const result = await s.dev.close()
    expect(result?.stats.completed).toBe(1)
    expect(newThreads(before)).toEqual([])
    expect(newFds(before)).toEqual([])
    libc.close(hangFd)
  })
})
