/**
 * Native memory (an mmap'd range) as GuestMemory regions: JavaScript sees native memory through
 * views of at most 4 GiB (koffi), so a range is cut into views of VIEW_CHUNK bytes, which
 * GuestMemory joins back for accesses and host pointers that cross a view boundary.
 */
import { view } from '../../../native-shims/libc.js'
import type { GuestRegion } from './guest-memory.js'

/** Bytes per view of a mapping: a power of 2 below koffi's 4 GiB limit. */
export const VIEW_CHUNK = 2 ** 31

/** Regions for `size` bytes of native memory at `hostAddress`, seen at guest-physical `base`. */
export function nativeRegions(hostAddress: bigint, base: number, size: number): GuestRegion[] {
  const regions: GuestRegion[] = []
  for (let off = 0; off < size; off += VIEW_CHUNK) {
    const len = Math.min(VIEW_CHUNK, size - off)
    const at = hostAddress + BigInt(off)
    regions.push({ base: base + off, bytes: new Uint8Array(view(at, len)), hostAddress: at })
  }
  return regions
}
