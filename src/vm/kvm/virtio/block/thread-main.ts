// The blk thread's entry (BlkThread.spawn in thread.ts starts it): builds the queue handler over
// the guest RAM and the backing, then serves kicks until told to stop.
import { parentPort, workerData } from 'node:worker_threads'
import * as libc from '../../../../../native-shims/libc.js'
import { GuestMemory } from '../../../memory/guest-memory.js'
import { VIRTIO_INTERRUPT } from '../mmio.js'
import type { Backing } from './backing.js'
import { openBacking, ownedFd } from './backing-spec.js'
import { type BlkQueueHandler, blkQueueHandler } from './handler.js'
import { type BlkThreadData, type BlkThreadMessage, CTL_FD, CTL_STATE, CTL_STOP, CTL_TID, CTL_WAKE, STATE_RUNNING, STATE_STOPPED } from './thread.js'

const USED_BUFFER = VIRTIO_INTERRUPT.USED_BUFFER
const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** The thread's body. Returns after stop; the control block's state word says STOPPED from then on, whatever happened. */
function runBlkThread(data: BlkThreadData, post: (m: BlkThreadMessage) => void): void {
  const { init } = data
  const ctl = new Int32Array(data.control)
  const stopped = () => {
    Atomics.store(ctl, CTL_STATE, STATE_STOPPED)
    Atomics.notify(ctl, CTL_STATE)
  }
  Atomics.store(ctl, CTL_TID, libc.gettid())
  let backing: Backing | undefined
  let handler: BlkQueueHandler
  try {
    const ram = GuestMemory.from(init.ram)
    backing = openBacking(init.backing)
    Atomics.store(ctl, CTL_FD, ownedFd(backing) ?? -1)
    const { irqFd, interruptStatus: isr } = init
    handler = blkQueueHandler(init, {
      ram,
      backing,
      notify: () => {
        if (irqFd === undefined) return post({ type: 'used' })
        if (isr && Atomics.or(isr, 0, USED_BUFFER) & USED_BUFFER) return
        libc.signalEventfd(irqFd)
      },
      sleep: (ms) => Atomics.wait(ctl, CTL_WAKE, 0, ms) === 'timed-out',
      stopRequested: () => Atomics.load(ctl, CTL_STOP) !== 0,
      onBroken: (why) => post({ type: 'error', message: why }),
    })
  } catch (e) {
    Atomics.store(ctl, CTL_FD, -1)
    backing?.close()
    post({ type: 'error', message: message(e) })
    stopped()
    return
  }
  Atomics.store(ctl, CTL_STATE, STATE_RUNNING)
  post({ type: 'ready' })
  const counter = new BigUint64Array(1)
  try {
    for (;;) {
      if (Atomics.load(ctl, CTL_STOP)) break
      handler.drain()
      if (Atomics.load(ctl, CTL_STOP)) break
      try {
        libc.read(init.kickFd, counter, 8)
      } catch (e) {
        const code = (e as { code?: string }).code
        if (code !== 'EINTR' && code !== 'EAGAIN') throw e
      }
    }
  } catch (e) {
    post({ type: 'error', message: message(e) })
  } finally {
    stopped()
    // Writes the guest did not flush still reach the disk once the VM stops (QEMU flushes on
    // close too); a failing sync is reported, the backing is closed either way.
    try {
      if (!backing.readOnly) backing.syncData()
    } catch (e) {
      post({ type: 'error', message: `fdatasync of the backing at stop failed: ${message(e)}` })
    }
    Atomics.store(ctl, CTL_FD, -1)
    backing.close()
  }
  post({ type: 'stopped', stats: handler.stats, queueState: handler.queueState })
}

if (!parentPort) throw new Error('thread-main.ts runs as a thread (BlkThread.spawn), not as a program')
const port = parentPort
runBlkThread(workerData, (m) => port.postMessage(m))
