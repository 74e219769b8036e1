/**
 * Guest RAM in host memory: one anonymous MAP_NORESERVE mapping per RAM range of the layout
 * (each a KVM memory slot), so the host commits only the pages the guest touches. The VMM sees a
 * range through views of at most VIEW_CHUNK bytes (a JavaScript view of native memory is at most
 * 4 GiB); GuestMemory joins them back for accesses and host pointers that cross a view boundary.
 */
import os from 'node:os'
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../native-shims/constants.js'
import { mmap, munmap, view } from '../../../../native-shims/libc.js'
import { KtstrError } from '../../../util/errors.js'
import { GuestMemory, type GuestRegion } from './guest-memory.js'
import { type MemoryLayout, MiB, type RamRange } from './layout.js'

/** Bytes per view of a mapping: a power of 2 below koffi's 4 GiB limit. */
export const VIEW_CHUNK = 2 ** 31

export interface HostRamSlot extends RamRange {
  readonly hostAddress: bigint
}

export interface HostRam {
  readonly memory: GuestMemory
  /** One per layout range, in order: what KVM_SET_USER_MEMORY_REGION gets. */
  readonly slots: readonly HostRamSlot[]
  /** Unmaps everything (once; views must not be touched after). */
  unmap(): void
}

/** A guest bigger than the host's RAM could only run by swapping, or be killed by the OOM killer. */
export function checkGuestFitsHost(memBytes: number, hostBytes = os.totalmem()): void {
  if (memBytes <= hostBytes) return
  const max = Math.floor(hostBytes / MiB)
  throw new KtstrError(`guest memory of ${Math.ceil(memBytes / MiB)} MiB is more than this host's ${max} MiB of RAM; ask for at most ${max} MiB`)
}

export function mapHostRam(layout: MemoryLayout, hostBytes = os.totalmem()): HostRam {
  checkGuestFitsHost(layout.memBytes, hostBytes)
  const slots: HostRamSlot[] = []
  const unmap = () => {
    for (const s of slots.splice(0)) munmap(s.hostAddress, s.size)
  }
  try {
    const regions: GuestRegion[] = []
    for (const r of layout.ram) {
      const hostAddress = mmap(r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)
      slots.push({ ...r, hostAddress })
      for (let off = 0; off < r.size; off += VIEW_CHUNK) {
        const len = Math.min(VIEW_CHUNK, r.size - off)
        const at = hostAddress + BigInt(off)
        regions.push({ base: r.base + off, bytes: new Uint8Array(view(at, len)), hostAddress: at })
      }
    }
    return { memory: new GuestMemory(regions), slots: [...slots], unmap }
  } catch (e) {
    unmap()
    throw e
  }
}
