/**
 * Guest RAM in host memory: one anonymous MAP_NORESERVE mapping per RAM range of the layout
 * (each a KVM memory slot), so the host commits only the pages the guest touches. The VMM sees a
 * range through views of at most VIEW_CHUNK bytes (../../memory/views.ts).
 *
 * A warm start's guests keep their RAM in one file instead, the ranges back to back in layout
 * order: a template guest in a shared file (on tmpfs) that becomes the snapshot's RAM, and a
 * restored guest in a private (copy-on-write) mapping of that snapshot — pages are read from the
 * page cache as the guest touches them, and its writes stay its own (as Firecracker restores).
 */
import fs from 'node:fs'
import os from 'node:os'
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../native-shims/constants.js'
import { mmap, munmap } from '../../../../native-shims/libc.js'
import { KtstrError } from '../../../util/errors.js'
import { GuestMemory, type GuestRegion } from '../../memory/guest-memory.js'
import { createSharedFile } from '../../memory/shared-file.js'
import { nativeRegions } from '../../memory/views.js'
import { type MemoryLayout, MiB, type RamRange } from './layout.js'

export { VIEW_CHUNK } from '../../memory/views.js'

export interface HostRamSlot extends RamRange {
  readonly hostAddress: bigint
}

export interface HostRam {
  readonly memory: GuestMemory
  /** One per layout range, in order: what KVM_SET_USER_MEMORY_REGION gets. */
  readonly slots: readonly HostRamSlot[]
  /** Unmaps everything (once); `memory` is released first, so a later access throws instead of faulting. */
  unmap(): void
}

/** A guest bigger than the host's RAM could only run by swapping, or be killed by the OOM killer. */
export function checkGuestFitsHost(memBytes: number, hostBytes = os.totalmem()): void {
  if (memBytes <= hostBytes) return
  const max = Math.floor(hostBytes / MiB)
  throw new KtstrError(`guest memory of ${Math.ceil(memBytes / MiB)} MiB is more than this host's ${max} MiB of RAM; ask for at most ${max} MiB`)
}

/** Where guest RAM lives: anonymous memory, a new shared file (a template), or a snapshot's RAM file mapped copy-on-write. */
export type RamBacking = { kind: 'anonymous' } | { kind: 'shared-file'; path: string } | { kind: 'snapshot'; path: string }

export function mapHostRam(layout: MemoryLayout, hostBytes = os.totalmem(), backing: RamBacking = { kind: 'anonymous' }): HostRam {
  checkGuestFitsHost(layout.memBytes, hostBytes)
  const maps: { addr: bigint; size: number }[] = []
  const slots: HostRamSlot[] = []
  let memory: GuestMemory | undefined
  const unmap = () => {
    memory?.release()
    slots.length = 0
    for (const m of maps.splice(0)) munmap(m.addr, m.size)
  }
  try {
    const file = backing.kind === 'anonymous' ? undefined : mapRamFile(layout.memBytes, backing)
    if (file !== undefined) maps.push({ addr: file, size: layout.memBytes })
    let offset = 0
    const regions: GuestRegion[] = []
    for (const r of layout.ram) {
      let hostAddress: bigint
      if (file !== undefined) hostAddress = file + BigInt(offset)
      else {
        hostAddress = mmap(r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)
        maps.push({ addr: hostAddress, size: r.size })
      }
      offset += r.size
      slots.push({ ...r, hostAddress })
      regions.push(...nativeRegions(hostAddress, r.base, r.size))
    }
    memory = new GuestMemory(regions)
    return { memory, slots: [...slots], unmap }
  } catch (e) {
    unmap()
    throw e
  }
}

function mapRamFile(bytes: number, backing: Exclude<RamBacking, { kind: 'anonymous' }>): bigint {
  if (backing.kind === 'shared-file') return createSharedFile(backing.path, bytes)
  const fd = fs.openSync(backing.path, 'r')
  try {
    const size = fs.fstatSync(fd).size
    if (size !== bytes) throw new Error(`the snapshot's RAM ${backing.path} is ${size} bytes, not the guest's ${bytes}`)
    // Writable yet opened read-only: a private mapping's writes never reach the file.
    return mmap(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0)
  } finally {
    fs.closeSync(fd)
  }
}
