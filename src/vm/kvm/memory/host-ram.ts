/**
 * Guest RAM in host memory: one anonymous MAP_NORESERVE mapping per RAM range of the layout
 * (each a KVM memory slot), so the host commits only the pages the guest touches. The VMM sees a
 * range through views of at most VIEW_CHUNK bytes (../../memory/views.ts).
 */
import os from 'node:os'
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../../native-shims/constants.js'
import { mmap, munmap } from '../../../../native-shims/libc.js'
import { KtstrError } from '../../../util/errors.js'
import { GuestMemory, type GuestRegion } from '../../memory/guest-memory.js'
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

export function mapHostRam(layout: MemoryLayout, hostBytes = os.totalmem()): HostRam {
  checkGuestFitsHost(layout.memBytes, hostBytes)
  const slots: HostRamSlot[] = []
  let memory: GuestMemory | undefined
  const unmap = () => {
    memory?.release()
    for (const s of slots.splice(0)) munmap(s.hostAddress, s.size)
  }
  try {
    const regions: GuestRegion[] = []
    for (const r of layout.ram) {
      const hostAddress = mmap(r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)
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
