import { existsSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { KtstrError } from '../../../src/util/errors.js'
import { HDR, LOADFLAGS, parseBzImage, XLF } from '../../../src/vm/kvm/arch/x86_64/boot/bzimage.js'
import { addKernelParams } from '../../../src/vm/kvm/arch/x86_64/boot/cmdline.js'
import { BOOT_SELECTORS, bootMsrs, buildBootGdt, CR0, CR4, EFER, entryState, MSR } from '../../../src/vm/kvm/arch/x86_64/boot/cpu-state.js'
import { buildE820, E820_TYPE, type E820Entry } from '../../../src/vm/kvm/arch/x86_64/boot/e820.js'
import { loadLinux } from '../../../src/vm/kvm/arch/x86_64/boot/loader.js'
import { buildZeroPage, ZP } from '../../../src/vm/kvm/arch/x86_64/boot/zero-page.js'
import { GiB, MiB, X86_LAYOUT, x86MemoryLayout } from '../../../src/vm/kvm/memory/layout.js'
import { GuestMemory } from '../../../src/vm/memory/guest-memory.js'
import { testKernel } from '../../helpers/repo.js'

// The kernel the tests use (KTSTR_KERNEL or the cache): a folder with bzImage and config.
const GUEST = testKernel && (statSync(testKernel).isDirectory() ? testKernel : path.dirname(testKernel))
const bzPath = `${GUEST}/bzImage`
const haveKernel = GUEST !== undefined && existsSync(bzPath) && existsSync(`${GUEST}/config`)
if (!haveKernel) console.warn(`skipping bzImage tests: ${bzPath} is missing`)
const kernelConfig = (key: string): string | undefined => {
  const text = readFileSync(`${GUEST}/config`, 'utf8')
  if (text.includes(`# ${key} is not set`)) return 'n'
  return new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1]
}

/** A minimal synthetic bzImage with the given header values. */
function fakeBzImage(o: { version?: number; xloadflags?: number; magic?: number; loadflags?: number; initSize?: number } = {}): Uint8Array {
  const b = new Uint8Array(5 * 512 + 64)
  const dv = new DataView(b.buffer)
  b[HDR.SETUP_SECTS] = 4
  dv.setUint16(HDR.BOOT_FLAG, 0xaa55, true)
  b[HDR.JUMP] = 0xeb
  b[HDR.JUMP + 1] = 0x6a
  dv.setUint32(HDR.HEADER, o.magic ?? 0x53726448, true)
  dv.setUint16(HDR.VERSION, o.version ?? 0x020f, true)
  b[HDR.LOADFLAGS] = o.loadflags ?? LOADFLAGS.LOADED_HIGH
  dv.setUint16(HDR.XLOADFLAGS, o.xloadflags ?? XLF.KERNEL_64, true)
  dv.setUint32(HDR.CMDLINE_SIZE, 2047, true)
  dv.setUint32(HDR.INITRD_ADDR_MAX, 0x7fff_ffff, true)
  dv.setUint32(HDR.KERNEL_ALIGNMENT, 0x20_0000, true)
  dv.setBigUint64(HDR.PREF_ADDRESS, 0x100_0000n, true)
  dv.setUint32(HDR.INIT_SIZE, o.initSize ?? 0x100_0000, true)
  b.fill(0x90, 5 * 512) // the "protected-mode kernel"
  return b
}

describe('bzImage setup header', () => {
  it.skipIf(!haveKernel)('parses the prebuilt guest kernel consistently with its config', () => {
    const file = readFileSync(bzPath)
    const bz = parseBzImage(file, bzPath)
    const h = bz.header
    expect(h.version).toBeGreaterThanOrEqual(0x020c)
    expect(h.xloadflags & XLF.KERNEL_64).toBe(XLF.KERNEL_64)
    expect(h.loadflags & LOADFLAGS.LOADED_HIGH).toBe(LOADFLAGS.LOADED_HIGH)
    expect(h.setupSects).toBe(file[0x1f1] || 4)
    expect(bz.kernel.length).toBe(file.length - (h.setupSects + 1) * 512)
    expect(h.prefAddress).toBe(Number(kernelConfig('CONFIG_PHYSICAL_START')))
    expect(h.kernelAlignment).toBe(Number(kernelConfig('CONFIG_PHYSICAL_ALIGN')))
    expect(h.relocatableKernel).toBe(kernelConfig('CONFIG_RELOCATABLE') === 'y')
    expect(h.initSize).toBeGreaterThan(bz.kernel.length) // room to decompress in place
    expect(h.initrdAddrMax).toBeGreaterThanOrEqual(0x37ff_ffff)
    expect(h.cmdlineSize).toBeGreaterThanOrEqual(255)
    const version = /^# Linux\/x86 (\S+) Kernel Configuration$/m.exec(readFileSync(`${GUEST}/config`, 'utf8'))![1]!
    expect(bz.kernelVersion?.startsWith(`${version} `)).toBe(true)
    expect(bz.setupHeaderBytes.length).toBe(0x202 + file[0x201]! - 0x1f1)
    expect(Buffer.from(bz.setupHeaderBytes.subarray(0x202 - 0x1f1, 0x206 - 0x1f1)).toString()).toBe('HdrS')
  })

  it('refuses what the 64-bit boot protocol cannot boot, saying why', () => {
    expect(() => parseBzImage(new Uint8Array(100), 'x')).toThrow(KtstrError)
    expect(() => parseBzImage(fakeBzImage({ magic: 0 }), 'x')).toThrow(/not a bzImage/)
    expect(() => parseBzImage(fakeBzImage({ version: 0x020b }), 'x')).toThrow(/boot protocol 2.11.*2.12 or newer/)
    expect(() => parseBzImage(fakeBzImage({ xloadflags: 0 }), 'x')).toThrow(/no 64-bit entry point/)
    expect(() => parseBzImage(fakeBzImage({ loadflags: 0 }), 'x')).toThrow(/zImage/)
    expect(parseBzImage(fakeBzImage()).header.version).toBe(0x020f)
  })
})

describe('e820 map', () => {
  const ram = (e: E820Entry[]) => e.filter((x) => x.type === E820_TYPE.RAM).reduce((n, x) => n + x.size, 0)
  const sorted = (e: E820Entry[]) => e.every((x, i) => i === 0 || e[i - 1]!.addr + e[i - 1]!.size <= x.addr)

  it('256 MiB: low RAM, the reserved BIOS area with the ACPI tables, RAM from 1 MiB', () => {
    const e = buildE820(x86MemoryLayout(256 * MiB))
    expect(e).toEqual([
      { addr: 0, size: 0x9_fc00, type: E820_TYPE.RAM },
      { addr: 0x9_fc00, size: 0xe_0000 - 0x9_fc00, type: E820_TYPE.RESERVED },
      { addr: 0xe_0000, size: 0x2_0000, type: E820_TYPE.ACPI },
      { addr: 0x10_0000, size: 255 * MiB, type: E820_TYPE.RAM },
    ])
    expect(ram(e)).toBe(256 * MiB - 0x6_0400) // everything but 640K..1M
  })

  it('1 GiB ends at 1 GiB; 5 GiB stops at 3 GiB and resumes at 4 GiB', () => {
    const g1 = buildE820(x86MemoryLayout(GiB))
    expect(g1.at(-1)).toEqual({ addr: MiB, size: GiB - MiB, type: E820_TYPE.RAM })
    const g5 = buildE820(x86MemoryLayout(5 * GiB))
    expect(g5.slice(-2)).toEqual([
      { addr: MiB, size: 3 * GiB - MiB, type: E820_TYPE.RAM },
      { addr: 4 * GiB, size: 2 * GiB, type: E820_TYPE.RAM },
    ])
    for (const e of [g1, g5]) expect(sorted(e)).toBe(true)
    // nothing claims the MMIO hole where the devices live
    for (const x of g5) expect(x.addr + x.size <= 0xc000_0000 || x.addr >= 4 * GiB).toBe(true)
  })
})

describe('zero page', () => {
  it('puts each field at its documented offset (zero-page.rst, boot.rst)', () => {
    const setupHeader = fakeBzImage().subarray(0x1f1, 0x26c)
    const e820 = buildE820(x86MemoryLayout(5 * GiB))
    const zp = buildZeroPage({
      setupHeader,
      cmdlineAddress: 0x2_0000,
      initrd: { address: 0x7f00_0000, size: 0x123_4567 },
      e820,
      rsdpAddress: 0xe_0000,
    })
    const dv = new DataView(zp.buffer)
    expect(zp.length).toBe(4096)
    expect(dv.getUint32(0x202, true)).toBe(0x53726448) // "HdrS" copied in
    expect(zp[0x210]).toBe(0xff) // type_of_loader
    expect(dv.getUint16(0x1fa, true)).toBe(0xffff) // vid_mode
    expect(dv.getUint32(0x228, true)).toBe(0x2_0000) // cmd_line_ptr
    expect(dv.getUint32(0x0c8, true)).toBe(0) // ext_cmd_line_ptr
    expect(dv.getUint32(0x218, true)).toBe(0x7f00_0000) // ramdisk_image
    expect(dv.getUint32(0x21c, true)).toBe(0x123_4567) // ramdisk_size
    expect(dv.getBigUint64(0x070, true)).toBe(0xe_0000n) // acpi_rsdp_addr
    expect(zp[0x1e8]).toBe(e820.length) // e820_entries
    expect(zp[ZP.SENTINEL]).toBe(0)
    e820.forEach((e, i) => {
      const at = 0x2d0 + 20 * i
      expect([dv.getBigUint64(at, true), dv.getBigUint64(at + 8, true), dv.getUint32(at + 16, true)]).toEqual([BigInt(e.addr), BigInt(e.size), e.type])
    })
  })

  it('splits addresses above 4 GiB into the ext_* fields', () => {
    const zp = buildZeroPage({ setupHeader: new Uint8Array(0), cmdlineAddress: 0x1_0002_0000, e820: [] })
    const dv = new DataView(zp.buffer)
    expect(dv.getUint32(0x228, true)).toBe(0x2_0000)
    expect(dv.getUint32(0x0c8, true)).toBe(1)
  })
})

describe('64-bit entry state', () => {
  /** Decodes one GDT descriptor the way the CPU does. */
  const decode = (gdt: Uint8Array, selector: number) => {
    const d = new DataView(gdt.buffer, gdt.byteOffset).getBigUint64(selector, true)
    const n = (shift: bigint, bits: bigint) => Number((d >> shift) & ((1n << bits) - 1n))
    const g = n(55n, 1n)
    const rawLimit = n(0n, 16n) | (n(48n, 4n) << 16)
    return {
      base: n(16n, 24n) | (n(56n, 8n) << 24),
      limit: g ? rawLimit * 4096 + 4095 : rawLimit,
      type: n(40n, 4n),
      s: n(44n, 1n),
      dpl: n(45n, 2n),
      present: n(47n, 1n),
      avl: n(52n, 1n),
      l: n(53n, 1n),
      db: n(54n, 1n),
      g,
    }
  }

  it('has flat 4 GiB __BOOT_CS/__BOOT_DS at 0x10/0x18 and matching segment registers', () => {
    const gdt = buildBootGdt()
    const cs = decode(gdt, BOOT_SELECTORS.CS)
    const ds = decode(gdt, BOOT_SELECTORS.DS)
    expect(cs).toMatchObject({ base: 0, limit: 0xffff_ffff, present: 1, s: 1, l: 1, db: 0 })
    expect(cs.type & 0b1010).toBe(0b1010) // code, readable
    expect(ds).toMatchObject({ base: 0, limit: 0xffff_ffff, present: 1, s: 1, l: 0 })
    expect(ds.type & 0b1010).toBe(0b0010) // data, writable

    const { regs, sregs } = entryState(0x100_0000)
    const { padding: _p, unusable: _u, selector: csSel, ...csReg } = sregs.cs
    expect(csSel).toBe(0x10)
    expect(csReg).toEqual(cs)
    for (const seg of [sregs.ds, sregs.es, sregs.ss]) {
      const { padding: _pp, unusable, selector, ...rest } = seg
      expect(selector).toBe(0x18)
      expect(unusable).toBe(0)
      expect(rest).toEqual(ds)
    }
    expect(sregs.gdt).toEqual({ base: X86_LAYOUT.GDT, limit: gdt.length - 1 })
    expect(sregs.cr0 & (CR0.PE | CR0.PG)).toBe(CR0.PE | CR0.PG)
    expect(sregs.cr0 & 0x6000_0000).toBe(0) // caches enabled (CD/NW clear)
    expect(sregs.cr4 & CR4.PAE).toBe(CR4.PAE)
    expect(sregs.efer & (EFER.LME | EFER.LMA)).toBe(EFER.LME | EFER.LMA)
    expect(sregs.cr3).toBe(X86_LAYOUT.PML4)
    expect(regs.rip).toBe(0x100_0200)
    expect(regs.rsi).toBe(X86_LAYOUT.ZERO_PAGE)
    expect(regs.rflags & 0x200).toBe(0) // interrupts off
    expect(Object.keys(regs)).toHaveLength(18) // all of kvm_regs
  })

  it('enables MTRRs with write-back default and fast strings', () => {
    const msrs = new Map(bootMsrs().map((m) => [m.index, m.data]))
    expect(msrs.get(MSR.MTRR_DEF_TYPE)! & 0x8ff).toBe(0x806)
    expect(msrs.get(MSR.IA32_MISC_ENABLE)! & 1).toBe(1)
    expect(msrs.size).toBe(bootMsrs().length) // no index twice
  })
})

describe.skipIf(!haveKernel)('loading the guest kernel into guest RAM', () => {
  const layout = x86MemoryLayout(256 * MiB)
  const file = haveKernel ? readFileSync(bzPath) : new Uint8Array()
  const initrd = Uint8Array.from({ length: 3 * MiB + 123 }, (_, i) => (i * 7) & 0xff)
  const cmdline = 'console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 rdinit=/init'

  /** Walks the guest page tables like the MMU: PML4 → PDPT → PD (2 MiB pages). */
  const translate = (mem: GuestMemory, cr3: number, va: number): number | undefined => {
    const idx = (shift: number) => Math.floor(va / 2 ** shift) % 512
    const pml4e = Number(mem.readU64(cr3 + 8 * idx(39)))
    if (!(pml4e & 1)) return undefined
    const pdpte = Number(mem.readU64((pml4e & ~0xfff) + 8 * idx(30)))
    if (!(pdpte & 1)) return undefined
    const pde = Number(mem.readU64((pdpte & ~0xfff) + 8 * idx(21)))
    if (!(pde & 1) || !(pde & 0x80)) return undefined
    return pde - (pde % (2 * MiB)) + (va % (2 * MiB))
  }

  it('places kernel, initrd, cmdline and zero page where the zero page says', () => {
    const mem = GuestMemory.allocate(layout.ram)
    const s = loadLinux(mem, { kernel: file, cmdline, initrd, layout, rsdpAddress: 0xe_0000, label: bzPath })
    const h = s.bzImage.header
    expect(s.kernelLoadAddress).toBe(h.prefAddress)
    expect(Buffer.from(mem.readBytes(s.kernelLoadAddress, 4096)).equals(Buffer.from(s.bzImage.kernel.subarray(0, 4096)))).toBe(true)

    const zp = mem.readBytes(X86_LAYOUT.ZERO_PAGE, 4096)
    const dv = new DataView(zp.buffer)
    expect(
      Buffer.from(zp.subarray(0x1f1, 0x1f1 + s.bzImage.setupHeaderBytes.length))
        .subarray(0x202 - 0x1f1, 0x206 - 0x1f1)
        .toString(),
    ).toBe('HdrS')
    const cmdPtr = dv.getUint32(0x228, true)
    const cmd = mem.readBytes(cmdPtr, cmdline.length + 1)
    expect(Buffer.from(cmd.subarray(0, -1)).toString()).toBe(cmdline)
    expect(cmd.at(-1)).toBe(0)

    const rdAddr = dv.getUint32(0x218, true)
    const rdSize = dv.getUint32(0x21c, true)
    expect(rdSize).toBe(initrd.length)
    expect(rdAddr % 4096).toBe(0)
    expect(rdAddr + rdSize).toBeLessThanOrEqual(layout.lowRamEnd)
    expect(layout.lowRamEnd - (rdAddr + rdSize)).toBeLessThan(4096) // as high as it goes
    expect(rdAddr).toBeGreaterThanOrEqual(s.kernelEnd)
    expect(Buffer.from(mem.readBytes(rdAddr, rdSize)).equals(Buffer.from(initrd))).toBe(true)

    expect(zp[0x1e8]).toBe(s.e820.length)
    expect(dv.getBigUint64(0x070, true)).toBe(0xe_0000n)

    // Everything the kernel touches at entry is identity-mapped.
    const cr3 = s.entry.sregs.cr3
    for (const va of [s.entry.regs.rip, s.kernelEnd - 1, X86_LAYOUT.ZERO_PAGE, cmdPtr, rdAddr + rdSize - 1, 4 * GiB - 1]) {
      expect(translate(mem, cr3, va)).toBe(va)
    }
    expect(translate(mem, cr3, 4 * GiB)).toBeUndefined()
    expect(Buffer.from(mem.readBytes(X86_LAYOUT.GDT, 40)).equals(Buffer.from(buildBootGdt()))).toBe(true)
    expect(s.entry.regs.rip).toBe(h.prefAddress + 0x200)
  })

  it('says what to change when things do not fit', () => {
    const mem = GuestMemory.allocate(layout.ram)
    expect(() => loadLinux(mem, { kernel: file, cmdline: 'x'.repeat(5000), layout })).toThrow(/accepts at most \d+; shorten/)
    expect(() => loadLinux(mem, { kernel: file, cmdline, initrd: new Uint8Array(250 * MiB), layout })).toThrow(/initramfs of 250 MiB does not fit.*give the VM more memory/)
    const small = x86MemoryLayout(64 * MiB)
    const huge = fakeBzImage({ initSize: 60 * MiB })
    expect(() => loadLinux(GuestMemory.allocate(small.ram), { kernel: huge, cmdline, layout: small, label: 'k' })).toThrow(
      /k needs guest RAM up to 76 MiB \(loads at 16 MiB, init_size 60 MiB\); give the VM more memory/,
    )
  })
})

describe('kernel command line', () => {
  it("puts VMM parameters before the `--` that starts init's arguments", () => {
    const line = 'console=ttyS0 quiet rdinit=/usr/bin/node -- /init.js --flag'
    expect(addKernelParams(line, ['pci=off', 'virtio_mmio.device=4K@0xd0000000:5'])).toBe(
      'console=ttyS0 quiet rdinit=/usr/bin/node pci=off virtio_mmio.device=4K@0xd0000000:5 -- /init.js --flag',
    )
  })

  it('appends when there is no `--`', () => {
    expect(addKernelParams('console=ttyS0  quiet', ['pci=off'])).toBe('console=ttyS0 quiet pci=off')
  })
})
