// Shared fixtures for the virtio-blk tests: guest RAM in a SharedArrayBuffer, a temp disk file,
// and the device's queue handler (what its blk thread runs) driven directly behind the test driver.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type Backing, FileBacking } from '../../../../src/vm/kvm/virtio/block/backing.js'
import { type BlkDeviceOptions, VirtioBlkDevice } from '../../../../src/vm/kvm/virtio/block/device.js'
import { type BlkQueueHandler, blkQueueHandler } from '../../../../src/vm/kvm/virtio/block/handler.js'
import { blkThreadScript } from '../../../../src/vm/kvm/virtio/block/thread.js'
import { featureBit, VIRTIO_F } from '../../../../src/vm/kvm/virtio/mmio.js'
import { GuestMemory } from '../../../../src/vm/memory/guest-memory.js'
import { GuestDriver } from './driver.js'

/** Guest RAM starts above 0 so gpa/offset mix-ups show. */
export const RAM_BASE = 0x10_0000
export const RAM_SIZE = 8 << 20

/** The blk thread runs compiled JavaScript; skip (with the reason) when dist/ is missing or older than src/. */
export function threadSkipReason(): string | undefined {
  try {
    blkThreadScript()
  } catch (e) {
    return (e as Error).message
  }
  const root = path.resolve(import.meta.dirname, '../../../..')
  for (const dir of ['src/vm/kvm/virtio/block', 'src/vm/kvm/virtio', 'src/vm/kvm/memory']) {
    for (const f of fs.readdirSync(path.join(root, dir)).filter((n) => n.endsWith('.ts'))) {
      const built = path.join(root, 'dist', dir, f.replace(/\.ts$/, '.js'))
      if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(path.join(root, dir, f)).mtimeMs) {
        return `${built} is missing or older than its source; run \`npm run build\``
      }
    }
  }
  return undefined
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-blk-'))
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** A disk file of `size` bytes filled with a position-dependent pattern. */
export function makeDisk(dir: string, size: number, name = 'disk.img'): string {
  const p = path.join(dir, name)
  fs.writeFileSync(p, pattern(0, size))
  return p
}

/** Deterministic bytes for disk offset `off`. */
export function pattern(off: number, len: number): Uint8Array {
  const b = new Uint8Array(len)
  for (let i = 0; i < len; i++) b[i] = ((off + i) * 131 + ((off + i) >> 9)) & 0xff
  return b
}

export function guestRam(size = RAM_SIZE, base = RAM_BASE): { ram: GuestMemory; sab: SharedArrayBuffer } {
  const sab = new SharedArrayBuffer(size)
  return { ram: GuestMemory.from([{ base, sab }]), sab }
}

export const FEATURES = featureBit(VIRTIO_F.VERSION_1) | featureBit(VIRTIO_F.EVENT_IDX)

export interface Rig {
  device: VirtioBlkDevice
  handler: BlkQueueHandler
  driver: GuestDriver
  ram: GuestMemory
  backing: Backing
  notifications: () => number
  /** Publishes the requests, drains the device, returns the used entries. */
  run: (...heads: number[]) => { id: number; len: number }[]
}

export function rig(
  diskPath: string,
  opts: Partial<BlkDeviceOptions> & { readOnly?: boolean; queueSize?: number; wrap?: (b: Backing) => Backing; features?: bigint; startIdx?: number } = {},
): Rig {
  const { readOnly = false, wrap = (b) => b, features = FEATURES, startIdx, ...devOpts } = opts
  const device = new VirtioBlkDevice({ backing: { kind: 'file', path: diskPath, readOnly }, ...devOpts })
  const { ram } = guestRam()
  const driver = new GuestDriver(ram, { queueSize: opts.queueSize ?? 256, base: RAM_BASE, size: RAM_SIZE, ...(startIdx === undefined ? {} : { startIdx }) })
  const backing = wrap(FileBacking.open(diskPath, { readOnly }))
  let notified = 0
  const setup = device.queueSetup(ram, [driver.config], features)
  const queueState = startIdx === undefined ? undefined : { nextAvail: startIdx, nextUsed: startIdx }
  const handler = blkQueueHandler({ ...setup, ...(queueState && { queueState }) }, { ram, backing, notify: () => notified++ })
  return {
    device,
    handler,
    driver,
    ram,
    backing,
    notifications: () => notified,
    run: (...heads) => {
      driver.publish(...heads)
      handler.drain()
      return driver.used()
    },
  }
}
