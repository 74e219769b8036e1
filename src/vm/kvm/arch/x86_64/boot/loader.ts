/**
 * Puts a bzImage, its command line and an initramfs into guest RAM the way a boot loader does
 * for the 64-bit boot protocol, and returns the vCPU 0 entry state. Pure: everything goes through
 * GuestMemory, so it runs against an ArrayBuffer in tests.
 */
import { KtstrError } from '../../../../../util/errors.js'
import { alignDown, type GuestAddress } from '../../../../memory/address.js'
import type { GuestMemory } from '../../../../memory/guest-memory.js'
import { type MemoryLayout, MiB, X86_LAYOUT } from '../../../memory/layout.js'
import { type BzImage, parseBzImage } from './bzimage.js'
import { type EntryState, entryState, IDENTITY_MAPPED, writeBootGdt, writeIdentityPageTables } from './cpu-state.js'
import { buildE820, type E820Entry } from './e820.js'
import { buildZeroPage } from './zero-page.js'

export interface LinuxBootOptions {
  /** The bzImage file, or its parsed form. */
  readonly kernel: Uint8Array | BzImage
  readonly cmdline: string
  readonly initrd?: Uint8Array
  readonly layout: MemoryLayout
  /** Where the ACPI RSDP is (acpi/tables.ts); without it the kernel scans 0xe0000-0xfffff. */
  readonly rsdpAddress?: number
  /** Names the kernel in error messages, e.g. its path. */
  readonly label?: string
}

export interface LinuxBootSetup {
  readonly entry: EntryState
  readonly bzImage: BzImage
  readonly kernelLoadAddress: GuestAddress
  /** First byte after the kernel's init_size footprint. */
  readonly kernelEnd: GuestAddress
  readonly zeroPage: GuestAddress
  readonly cmdline: { readonly address: GuestAddress; readonly size: number }
  readonly initrd: { readonly address: GuestAddress; readonly size: number } | undefined
  readonly e820: readonly E820Entry[]
}

const PAGE = 4096

export function loadLinux(mem: GuestMemory, o: LinuxBootOptions): LinuxBootSetup {
  const label = o.label ?? 'kernel'
  const bz = o.kernel instanceof Uint8Array ? parseBzImage(o.kernel, label) : o.kernel
  const h = bz.header
  const mib = (n: number) => `${Math.ceil(n / MiB)} MiB`

  // A relocatable kernel may go anywhere kernel_alignment-aligned; pref_address is such a place
  // and the only one a non-relocatable kernel accepts (boot.rst, pref_address).
  const load = h.prefAddress
  if (h.relocatableKernel && load % h.kernelAlignment !== 0) {
    throw new KtstrError(`${label}: pref_address 0x${load.toString(16)} is not aligned to kernel_alignment; the bzImage header is inconsistent`)
  }
  const kernelEnd = load + Math.max(h.initSize, bz.kernel.length)
  if (load < X86_LAYOUT.HIMEM || kernelEnd > o.layout.lowRamEnd || kernelEnd > IDENTITY_MAPPED) {
    throw new KtstrError(`${label} needs guest RAM up to ${mib(kernelEnd)} (loads at ${mib(load)}, init_size ${mib(h.initSize)}); give the VM more memory`)
  }

  const cmdBytes = new TextEncoder().encode(o.cmdline)
  const cmdMax = Math.min(h.cmdlineSize, X86_LAYOUT.CMDLINE_MAX - 1)
  if (cmdBytes.length > cmdMax) {
    throw new KtstrError(`kernel command line is ${cmdBytes.length} bytes but ${label} accepts at most ${cmdMax}; shorten the kernel arguments`)
  }

  let initrd: LinuxBootSetup['initrd']
  if (o.initrd) {
    // As high as allowed: below initrd_addr_max and the end of low RAM, page aligned.
    const top = Math.min(h.initrdAddrMax + 1, o.layout.lowRamEnd)
    const address = alignDown(top - o.initrd.length, PAGE)
    if (address < kernelEnd) {
      throw new KtstrError(`initramfs of ${mib(o.initrd.length)} does not fit in guest RAM below ${mib(top)} after the kernel (${mib(kernelEnd)}); give the VM more memory`)
    }
    initrd = { address: address as GuestAddress, size: o.initrd.length }
    mem.write(address, o.initrd)
  }

  mem.write(load, bz.kernel)
  mem.fill(X86_LAYOUT.CMDLINE, cmdBytes.length + 1)
  mem.write(X86_LAYOUT.CMDLINE, cmdBytes)
  const e820 = buildE820(o.layout)
  const zeroPage = buildZeroPage({
    setupHeader: bz.setupHeaderBytes,
    cmdlineAddress: X86_LAYOUT.CMDLINE,
    ...(initrd && { initrd }),
    e820,
    ...(o.rsdpAddress !== undefined && { rsdpAddress: o.rsdpAddress }),
  })
  mem.write(X86_LAYOUT.ZERO_PAGE, zeroPage)
  writeIdentityPageTables(mem)
  writeBootGdt(mem)

  return {
    entry: entryState(load, X86_LAYOUT.ZERO_PAGE),
    bzImage: bz,
    kernelLoadAddress: load as GuestAddress,
    kernelEnd: kernelEnd as GuestAddress,
    zeroPage: X86_LAYOUT.ZERO_PAGE,
    cmdline: { address: X86_LAYOUT.CMDLINE, size: cmdBytes.length + 1 },
    initrd,
    e820,
  }
}
