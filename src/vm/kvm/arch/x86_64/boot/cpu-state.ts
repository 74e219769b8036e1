/**
 * The CPU state for the Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot
 * Protocol"): long mode with paging on, an identity map covering the kernel, zero page and command
 * line, a GDT whose __BOOT_CS (0x10) / __BOOT_DS (0x18) are flat 4 GiB code/data segments, CS =
 * __BOOT_CS, DS/ES/SS = __BOOT_DS, interrupts off, RSI = zero page, RIP = load address + 0x200.
 *
 * Plain data out: the runtime copies `regs` into a kvm_regs and overlays `sregs` on the kvm_sregs it
 * got from KVM_GET_SREGS (which keeps apic_base, the LDT and the interrupt bitmap as KVM made them).
 */
import type { GuestMemory } from '../../../../memory/guest-memory.js'
import { GiB, MiB, X86_LAYOUT } from '../../../memory/layout.js'

export const CR0 = { PE: 1 << 0, ET: 1 << 4, PG: 0x8000_0000 } as const
export const CR4 = { PAE: 1 << 5 } as const
export const EFER = { LME: 1 << 8, LMA: 1 << 10 } as const
/** RFLAGS bit 1 is reserved and reads as 1; IF (bit 9) stays clear. */
export const RFLAGS_RESERVED = 0x2

const PTE = { PRESENT: 1, WRITABLE: 2, PAGE_SIZE: 0x80 } as const

/** GDT slots: boot.rst wants code at selector 0x10 and data at 0x18. */
export const BOOT_SELECTORS = { CS: 0x10, DS: 0x18, TSS: 0x20 } as const

/** Access/flags words (bits 8-15 and 20-23 of a descriptor's high dword, packed as 0xF0FF). */
const DESC = {
  CODE64: 0xa09b, // G, L, P, DPL 0, S, type 0xb execute/read, accessed
  DATA: 0xc093, // G, D/B, P, DPL 0, S, type 3 read/write, accessed
  TSS64: 0x808b, // G, P, type 0xb busy 64-bit TSS
} as const

interface Descriptor {
  flags: number
  base: number
  limit: number
}
const BOOT_GDT: readonly Descriptor[] = [
  { flags: 0, base: 0, limit: 0 },
  { flags: 0, base: 0, limit: 0 },
  { flags: DESC.CODE64, base: 0, limit: 0xfffff },
  { flags: DESC.DATA, base: 0, limit: 0xfffff },
  { flags: DESC.TSS64, base: 0, limit: 0xfffff },
]

function encodeDescriptor(d: Descriptor): bigint {
  const base = BigInt(d.base)
  const limit = BigInt(d.limit)
  const flags = BigInt(d.flags)
  return ((base & 0xff00_0000n) << 32n) | ((flags & 0xf0ffn) << 40n) | ((limit & 0xf_0000n) << 32n) | ((base & 0xff_ffffn) << 16n) | (limit & 0xffffn)
}

/** The boot GDT's bytes (8 bytes per descriptor). */
export function buildBootGdt(): Uint8Array {
  const out = new Uint8Array(BOOT_GDT.length * 8)
  const dv = new DataView(out.buffer)
  BOOT_GDT.forEach((d, i) => dv.setBigUint64(i * 8, encodeDescriptor(d), true))
  return out
}

/** The fields of struct kvm_segment. */
export interface KvmSegmentValue {
  base: number
  limit: number
  selector: number
  type: number
  present: number
  dpl: number
  db: number
  s: number
  l: number
  g: number
  avl: number
  unusable: number
  padding: number
}

/** kvm_segment for GDT slot `index`, as the CPU caches it after loading the selector. */
function segmentFor(index: number): KvmSegmentValue {
  const d = BOOT_GDT[index]!
  const f = d.flags
  const g = (f >> 15) & 1
  const present = (f >> 7) & 1
  return {
    base: d.base,
    limit: g ? d.limit * 0x1000 + 0xfff : d.limit, // KVM wants the byte-granular limit
    selector: index * 8,
    type: f & 0xf,
    present,
    dpl: (f >> 5) & 3,
    db: (f >> 14) & 1,
    s: (f >> 4) & 1,
    l: (f >> 13) & 1,
    g,
    avl: (f >> 12) & 1,
    unusable: present ? 0 : 1,
    padding: 0,
  }
}

export interface KvmDtableValue {
  base: number
  limit: number
}

/** The kvm_sregs fields the 64-bit entry sets; the rest stays as KVM_GET_SREGS returned it. */
export interface EntrySregs {
  cs: KvmSegmentValue
  ds: KvmSegmentValue
  es: KvmSegmentValue
  fs: KvmSegmentValue
  gs: KvmSegmentValue
  ss: KvmSegmentValue
  tr: KvmSegmentValue
  gdt: KvmDtableValue
  idt: KvmDtableValue
  cr0: number
  cr3: number
  cr4: number
  efer: number
}

/** All of struct kvm_regs. */
export interface KvmRegsValue {
  rax: number
  rbx: number
  rcx: number
  rdx: number
  rsi: number
  rdi: number
  rsp: number
  rbp: number
  r8: number
  r9: number
  r10: number
  r11: number
  r12: number
  r13: number
  r14: number
  r15: number
  rip: number
  rflags: number
}

export interface EntryState {
  regs: KvmRegsValue
  sregs: EntrySregs
}

/** Registers for entering the kernel at `kernelLoadAddress` + 0x200 (startup_64). */
export function entryState(kernelLoadAddress: number, zeroPage: number = X86_LAYOUT.ZERO_PAGE): EntryState {
  const code = segmentFor(BOOT_SELECTORS.CS / 8)
  const data = segmentFor(BOOT_SELECTORS.DS / 8)
  const regs: KvmRegsValue = {
    rax: 0,
    rbx: 0,
    rcx: 0,
    rdx: 0,
    rsi: zeroPage,
    rdi: 0,
    rsp: X86_LAYOUT.BOOT_STACK_TOP,
    rbp: X86_LAYOUT.BOOT_STACK_TOP,
    r8: 0,
    r9: 0,
    r10: 0,
    r11: 0,
    r12: 0,
    r13: 0,
    r14: 0,
    r15: 0,
    rip: kernelLoadAddress + 0x200,
    rflags: RFLAGS_RESERVED,
  }
  const sregs: EntrySregs = {
    cs: code,
    ds: data,
    es: { ...data },
    fs: { ...data },
    gs: { ...data },
    ss: { ...data },
    tr: segmentFor(BOOT_SELECTORS.TSS / 8),
    gdt: { base: X86_LAYOUT.GDT, limit: BOOT_GDT.length * 8 - 1 },
    idt: { base: X86_LAYOUT.IDT, limit: 0 },
    // CD/NW stay clear (caches on); ET is hardwired to 1 on everything 64-bit.
    cr0: CR0.PE | CR0.ET | CR0.PG,
    cr3: X86_LAYOUT.PML4,
    cr4: CR4.PAE,
    efer: EFER.LME | EFER.LMA,
  }
  return { regs, sregs }
}

export const MSR = {
  IA32_TSC: 0x10,
  IA32_SYSENTER_CS: 0x174,
  IA32_SYSENTER_ESP: 0x175,
  IA32_SYSENTER_EIP: 0x176,
  IA32_MISC_ENABLE: 0x1a0,
  MTRR_DEF_TYPE: 0x2ff,
  STAR: 0xc000_0081,
  LSTAR: 0xc000_0082,
  CSTAR: 0xc000_0083,
  SYSCALL_MASK: 0xc000_0084,
  KERNEL_GS_BASE: 0xc000_0102,
} as const

export interface MsrValue {
  index: number
  data: number
}

/**
 * MSRs for every vCPU before it first runs (KVM_SET_MSRS), as a PC firmware leaves them: the
 * syscall/sysenter MSRs and TSC zeroed, fast strings on (IA32_MISC_ENABLE bit 0), and MTRRs enabled
 * with write-back as the default type (MTRRdefType E=bit 11, type 6) — with MTRRs off Linux also
 * skips PAT setup ("MTRRs disabled, skipping PAT initialization").
 */
export function bootMsrs(): MsrValue[] {
  return [
    { index: MSR.IA32_SYSENTER_CS, data: 0 },
    { index: MSR.IA32_SYSENTER_ESP, data: 0 },
    { index: MSR.IA32_SYSENTER_EIP, data: 0 },
    { index: MSR.STAR, data: 0 },
    { index: MSR.LSTAR, data: 0 },
    { index: MSR.CSTAR, data: 0 },
    { index: MSR.SYSCALL_MASK, data: 0 },
    { index: MSR.KERNEL_GS_BASE, data: 0 },
    { index: MSR.IA32_TSC, data: 0 },
    { index: MSR.IA32_MISC_ENABLE, data: 1 },
    { index: MSR.MTRR_DEF_TYPE, data: (1 << 11) | 6 },
  ]
}

/** Bytes the identity map covers: 0-4 GiB in 2 MiB pages (kernel, zero page, cmdline, initrd all live below 3 GiB). */
export const IDENTITY_MAPPED = X86_LAYOUT.PD_COUNT * GiB

/** Writes PML4 → PDPT → PD_COUNT page directories of 2 MiB pages mapping [0, 4 GiB) onto itself. */
export function writeIdentityPageTables(mem: GuestMemory): void {
  const L = X86_LAYOUT
  mem.fill(L.PML4, 0x1000)
  mem.fill(L.PDPT, 0x1000)
  mem.writeU64(L.PML4, L.PDPT | PTE.PRESENT | PTE.WRITABLE)
  for (let i = 0; i < L.PD_COUNT; i++) {
    const pd = L.PD + i * 0x1000
    mem.writeU64(L.PDPT + i * 8, pd | PTE.PRESENT | PTE.WRITABLE)
    for (let j = 0; j < 512; j++) {
      const phys = i * GiB + j * 2 * MiB
      mem.writeU64(pd + j * 8, phys + (PTE.PRESENT | PTE.WRITABLE | PTE.PAGE_SIZE))
    }
  }
}

/** Writes the boot GDT and an empty IDT. */
export function writeBootGdt(mem: GuestMemory): void {
  mem.write(X86_LAYOUT.GDT, buildBootGdt())
  mem.writeU64(X86_LAYOUT.IDT, 0n)
}
