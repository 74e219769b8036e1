/**
 * The kvm backend's disks (`--disk`, docblock `disk=`): disk i is a virtio-blk device on
 * virtio-mmio window 1 + i (window 0 is the virtio-console channel), announced on the kernel
 * command line after the console, so Linux probes them in order and names them /dev/vda, /dev/vdb, …
 *
 * Each device's blk thread serves its queue without the main thread: the driver's
 * QueueNotify write signals an ioeventfd inside KVM, which the blk thread blocks on, and it
 * raises the used-buffer interrupt through an irqfd (setting InterruptStatus itself first). The
 * main thread only handles the register accesses of setup and of the interrupt handler.
 */
import { EFD_CLOEXEC, EFD_NONBLOCK } from '../../../../../native-shims/constants.js'
import * as libc from '../../../../../native-shims/libc.js'
import { KtstrError } from '../../../../util/errors.js'
import { log } from '../../../../util/log.js'
import type { DiskSpec } from '../../../disk.js'
import { lockDisk } from '../../../disk-lock.js'
import type { GuestMemory } from '../../../memory/guest-memory.js'
import type { Bus } from '../../io-bus.js'
import { type MmioDeviceWindow, VIRTIO_MMIO_IRQS, virtioMmioWindow } from '../../memory/layout.js'
import { MMIO_REG, VirtioMmioTransport, virtioMmioCmdline } from '../mmio.js'
import { openDiskFile } from './backing.js'
import { VirtioBlkDevice } from './device.js'
import type { ThrottleOptions } from './throttle.js'

/** virtio-mmio windows before the disks' (the virtio-console channel). */
export const FIRST_DISK_WINDOW = 1
/** One virtio-mmio IRQ per disk. */
export const MAX_KVM_DISKS = VIRTIO_MMIO_IRQS.length - FIRST_DISK_WINDOW

/** What the disks need of the VM: KvmVm, or a test double that routes the eventfds itself. */
export interface DiskEventfds {
  addIoeventfd(fd: number, addr: number, len: 1 | 2 | 4 | 8, datamatch?: number): void
  addIrqfd(fd: number, gsi: number): void
}

export interface KvmDisk {
  readonly spec: DiskSpec
  readonly window: MmioDeviceWindow
  readonly device: VirtioBlkDevice
  readonly transport: VirtioMmioTransport
  /** The ioeventfd on the window's QueueNotify (queue 0). */
  readonly kickFd: number
  /** The irqfd on the window's IRQ. */
  readonly irqFd: number
  /** The image, open (and locked, as QEMU locks it) for the VM's life; the blk thread borrows it. */
  readonly fileFd: number
}

export interface KvmDisks {
  readonly disks: readonly KvmDisk[]
  /** The `virtio_mmio.device=` parameters, in disk order. */
  readonly cmdline: readonly string[]
  /**
   * Stops every blk thread (each fdatasyncs its backing; bounded, see BlkThread.stop) and
   * closes the eventfds and images (dropping their locks). Call once no vCPU runs and before guest
   * RAM is unmapped; never rejects.
   */
  close(): Promise<void>
  /**
   * Resolves once every blk thread has exited: guest RAM may be unmapped then. Already
   * resolved after close() unless a thread is stuck in an uninterruptible backing call.
   */
  readonly gone: () => Promise<void>
  /** Blk threads still alive (after close(): stuck ones). */
  readonly liveThreads: () => number
}

/**
 * `iops=N` / `bps=N` as token buckets. Like QEMU's throttling without a `-max` (util/throttle.c),
 * a tenth of a second's worth may go at once; an IOPS bucket always admits one request at once.
 */
export function diskThrottle(d: Pick<DiskSpec, 'iops' | 'bps'>): ThrottleOptions | undefined {
  if (!d.iops && !d.bps) return undefined
  return {
    ...(d.iops ? { iops: { rate: d.iops, burst: Math.max(1, d.iops / 10) } } : {}),
    ...(d.bps ? { bytesPerSec: { rate: d.bps, burst: d.bps / 10 } } : {}),
  }
}

/**
 * Creates the devices for `specs` on `mmio` and registers their eventfds with `vm`. On a failure
 * nothing stays open.
 */
export function attachDisks(specs: readonly DiskSpec[], deps: { vm: DiskEventfds; ram: GuestMemory; mmio: Bus }): KvmDisks {
  if (specs.length > MAX_KVM_DISKS) {
    throw new KtstrError(`the kvm backend attaches at most ${MAX_KVM_DISKS} disks (one virtio-mmio interrupt each); got ${specs.length}`)
  }
  const disks: KvmDisk[] = []
  const fds: number[] = []
  const eventfd = (flags: number) => {
    const fd = libc.eventfd(0, EFD_CLOEXEC | flags)
    fds.push(fd)
    return fd
  }
  const closeFds = () => {
    for (const fd of fds.splice(0)) libc.close(fd)
  }
  try {
    specs.forEach((spec, i) => {
      const fileFd = openDiskFile(spec.path, spec.readOnly)
      fds.push(fileFd)
      lockDisk(fileFd, spec.path, spec.readOnly)
      const window = virtioMmioWindow(FIRST_DISK_WINDOW + i)
      // The blk thread blocks in read() on the kick fd; the irqfd is only ever written.
      const kickFd = eventfd(0)
      const irqFd = eventfd(EFD_NONBLOCK)
      const throttle = diskThrottle(spec)
      const device = new VirtioBlkDevice({
        backing: { kind: 'file', path: spec.path, readOnly: spec.readOnly, fd: fileFd },
        ram: deps.ram,
        kickFd,
        irqFd,
        serial: `ktstr-disk${i}`,
        ...(throttle ? { throttle } : {}),
      })
      const name = `virtio-blk${i}`
      const transport = new VirtioMmioTransport(device, {
        // Configuration changes and DEVICE_NEEDS_RESET; used buffers come from the blk thread.
        onInterrupt: () => libc.signalEventfd(irqFd),
        onProtocolError: (m) => log.debug(`${name}: ${m}`),
      })
      deps.vm.addIoeventfd(kickFd, window.base + MMIO_REG.QUEUE_NOTIFY, 4, 0)
      deps.vm.addIrqfd(irqFd, window.irq)
      deps.mmio.add(name, window.base, window.size, {
        read: (off, size) => transport.read(off, size),
        write: (off, size, v) => transport.write(off, size, Number(v)),
      })
      disks.push({ spec, window, device, transport, kickFd, irqFd, fileFd })
    })
  } catch (e) {
    closeFds()
    throw e
  }
  let closing: Promise<void> | undefined
  return {
    disks,
    cmdline: disks.map((d) => virtioMmioCmdline(d.window)),
    close: () =>
      (closing ??= (async () => {
        await Promise.all(
          disks.map(async (d) => {
            try {
              const r = await d.device.close()
              if (r) log.debug(`virtio-blk ${d.spec.path}: ${JSON.stringify(r.stats)}`)
            } catch (e) {
              log.warn(`virtio-blk ${d.spec.path}: stopping its blk thread failed: ${e instanceof Error ? e.message : String(e)}`)
            }
          }),
        )
        // Safe even with a thread left behind: it was terminated, so it runs no more JavaScript,
        // and a syscall still in flight holds its own reference to the file.
        closeFds()
      })()),
    gone: async () => {
      await Promise.all(disks.map((d) => d.device.threadsGone()))
    },
    liveThreads: () => disks.reduce((n, d) => n + d.device.liveThreads, 0),
  }
}
