/**
 * /dev/kvm and the VM file descriptor: the VM-wide ioctls our VMM needs (KVM API,
 * Documentation/virt/kvm/api.rst). vCPU ioctls live in vcpu/run-loop.ts, on the vCPU's own thread.
 */
import koffi from 'koffi'
import { O_CLOEXEC, O_RDWR } from '../../../native-shims/constants.js'
import {
  KVM_API_VERSION,
  KVM_CAP,
  KVM_IOCTL,
  KVM_IOEVENTFD_FLAG,
  kvm_cpuid_entry2,
  kvm_cpuid2,
  kvm_ioeventfd,
  kvm_irq_level,
  kvm_irqfd,
  kvm_pit_config,
  kvm_userspace_memory_region,
  offsetOf,
} from '../../../native-shims/kvm/abi.js'
import { close, ioctlPtr, ioctlVal, open, tryIoctlPtr } from '../../../native-shims/libc.js'
import { KtstrError } from '../../util/errors.js'

import type { CpuidEntry } from './arch/x86_64/cpuid.js'

const ENTRY_SIZE = koffi.sizeof(kvm_cpuid_entry2)
const CPUID_HEADER = koffi.sizeof(kvm_cpuid2)
/** Addresses KVM needs for its real-mode TSS and identity page table on Intel (below 4 GiB, unused by RAM). */
const TSS_ADDR = 0xfffb_d000
const IDENTITY_MAP_ADDR = 0xfffb_c000

export class KvmSystem {
  readonly fd: number

  constructor(path = '/dev/kvm') {
    try {
      this.fd = open(path, O_RDWR | O_CLOEXEC)
    } catch (e) {
      throw new KtstrError(`cannot open ${path} (${(e as { code?: string }).code}); use --backend qemu or fix access to KVM`)
    }
    const version = ioctlVal(this.fd, KVM_IOCTL.GET_API_VERSION, 0)
    if (version !== KVM_API_VERSION) throw new KtstrError(`KVM API version ${version} is not the expected ${KVM_API_VERSION}`)
    for (const cap of ['IRQCHIP', 'USER_MEMORY', 'SET_TSS_ADDR', 'PIT2', 'IOEVENTFD', 'IRQFD', 'EXT_CPUID'] as const) {
      if (this.checkExtension(KVM_CAP[cap]!) <= 0) throw new KtstrError(`this KVM lacks KVM_CAP_${cap}; use --backend qemu`)
    }
  }

  checkExtension(cap: number): number {
    return ioctlVal(this.fd, KVM_IOCTL.CHECK_EXTENSION, cap)
  }

  vcpuMmapSize(): number {
    return ioctlVal(this.fd, KVM_IOCTL.GET_VCPU_MMAP_SIZE, 0)
  }

  /** KVM_GET_SUPPORTED_CPUID, growing the buffer until KVM stops saying E2BIG. */
  supportedCpuid(): CpuidEntry[] {
    for (let n = 64; n <= 4096; n *= 2) {
      const buf = Buffer.alloc(CPUID_HEADER + n * ENTRY_SIZE)
      buf.writeUInt32LE(n, 0)
      const r = tryIoctlPtr(this.fd, KVM_IOCTL.GET_SUPPORTED_CPUID, buf)
      if (r === -7 /* E2BIG */) continue
      if (r < 0) throw new Error(`KVM_GET_SUPPORTED_CPUID failed: errno ${-r}`)
      return decodeCpuid(buf)
    }
    throw new Error('KVM_GET_SUPPORTED_CPUID: more than 4096 entries')
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs a vCPU's state includes (asked once with no room, to learn the count). */
  msrIndexList(): number[] {
    const probe = Buffer.alloc(4)
    if (tryIoctlPtr(this.fd, KVM_IOCTL.GET_MSR_INDEX_LIST, probe) >= 0) return []
    const n = probe.readUInt32LE(0)
    const buf = Buffer.alloc(4 + 4 * n)
    buf.writeUInt32LE(n, 0)
    ioctlPtr(this.fd, KVM_IOCTL.GET_MSR_INDEX_LIST, buf)
    return Array.from({ length: buf.readUInt32LE(0) }, (_, i) => buf.readUInt32LE(4 + 4 * i))
  }

  createVm(): KvmVm {
    return new KvmVm(ioctlVal(this.fd, KVM_IOCTL.CREATE_VM, 0))
  }

  close(): void {
    close(this.fd)
  }
}

export class KvmVm {
  constructor(readonly fd: number) {}

  /** KVM_CHECK_EXTENSION on the VM (KVM_CAP_CHECK_EXTENSION_VM): some answers are per VM (KVM_CAP_XSAVE2's size). */
  checkExtension(cap: number): number {
    return ioctlVal(this.fd, KVM_IOCTL.CHECK_EXTENSION, cap)
  }

  /** In-kernel PIC + IOAPIC + LAPICs, and the PIT; must come before vCPUs are created. */
  setupInterruptControllers(): void {
    ioctlVal(this.fd, KVM_IOCTL.SET_TSS_ADDR, TSS_ADDR)
    const identity = Buffer.alloc(8)
    identity.writeBigUInt64LE(BigInt(IDENTITY_MAP_ADDR))
    ioctlPtr(this.fd, KVM_IOCTL.SET_IDENTITY_MAP_ADDR, identity)
    ioctlVal(this.fd, KVM_IOCTL.CREATE_IRQCHIP, 0)
    const pit = Buffer.alloc(koffi.sizeof(kvm_pit_config))
    ioctlPtr(this.fd, KVM_IOCTL.CREATE_PIT2, pit)
  }

  setMemoryRegion(slot: number, guestPhys: number, size: number, host: bigint): void {
    const region = Buffer.alloc(koffi.sizeof(kvm_userspace_memory_region))
    region.writeUInt32LE(slot, 0)
    region.writeUInt32LE(0, 4)
    region.writeBigUInt64LE(BigInt(guestPhys), 8)
    region.writeBigUInt64LE(BigInt(size), 16)
    region.writeBigUInt64LE(host, 24)
    ioctlPtr(this.fd, KVM_IOCTL.SET_USER_MEMORY_REGION, region)
  }

  /** Drive an interrupt line of the in-kernel PIC/IOAPIC (GSI). */
  irqLine(gsi: number, level: 0 | 1): void {
    const b = irqBuf
    b.writeUInt32LE(gsi, 0)
    b.writeUInt32LE(level, 4)
    ioctlPtr(this.fd, KVM_IOCTL.IRQ_LINE, b)
  }

  /** An edge: raise and lower (ISA interrupts are edge-triggered, active high). */
  pulseIrq(gsi: number): void {
    this.irqLine(gsi, 1)
    this.irqLine(gsi, 0)
  }

  /**
   * KVM_IOEVENTFD: a guest MMIO write of `len` bytes at `addr` (with `datamatch`, only of that
   * value) signals the eventfd `fd` inside KVM instead of exiting to the VMM.
   */
  addIoeventfd(fd: number, addr: number, len: 1 | 2 | 4 | 8, datamatch?: number): void {
    const b = Buffer.alloc(koffi.sizeof(kvm_ioeventfd))
    b.writeBigUInt64LE(BigInt(datamatch ?? 0), offsetOf(kvm_ioeventfd, 'datamatch'))
    b.writeBigUInt64LE(BigInt(addr), offsetOf(kvm_ioeventfd, 'addr'))
    b.writeUInt32LE(len, offsetOf(kvm_ioeventfd, 'len'))
    b.writeInt32LE(fd, offsetOf(kvm_ioeventfd, 'fd'))
    b.writeUInt32LE(datamatch === undefined ? 0 : KVM_IOEVENTFD_FLAG.DATAMATCH, offsetOf(kvm_ioeventfd, 'flags'))
    ioctlPtr(this.fd, KVM_IOCTL.IOEVENTFD, b)
  }

  /** KVM_IRQFD: a write to the eventfd `fd` pulses interrupt line `gsi` (an edge, like pulseIrq). */
  addIrqfd(fd: number, gsi: number): void {
    const b = Buffer.alloc(koffi.sizeof(kvm_irqfd))
    b.writeUInt32LE(fd, offsetOf(kvm_irqfd, 'fd'))
    b.writeUInt32LE(gsi, offsetOf(kvm_irqfd, 'gsi'))
    ioctlPtr(this.fd, KVM_IOCTL.IRQFD, b)
  }

  close(): void {
    close(this.fd)
  }
}

const irqBuf = Buffer.alloc(koffi.sizeof(kvm_irq_level))

export function decodeCpuid(buf: Buffer): CpuidEntry[] {
  const n = buf.readUInt32LE(0)
  const out: CpuidEntry[] = []
  for (let i = 0; i < n; i++) {
    const o = CPUID_HEADER + i * ENTRY_SIZE
    out.push({
      function: buf.readUInt32LE(o),
      index: buf.readUInt32LE(o + 4),
      flags: buf.readUInt32LE(o + 8),
      eax: buf.readUInt32LE(o + 12),
      ebx: buf.readUInt32LE(o + 16),
      ecx: buf.readUInt32LE(o + 20),
      edx: buf.readUInt32LE(o + 24),
    })
  }
  return out
}

/** The kvm_cpuid2 buffer KVM_SET_CPUID2 takes. */
export function encodeCpuid(entries: readonly CpuidEntry[]): Buffer {
  const buf = Buffer.alloc(CPUID_HEADER + entries.length * ENTRY_SIZE)
  buf.writeUInt32LE(entries.length, 0)
  entries.forEach((e, i) => {
    const o = CPUID_HEADER + i * ENTRY_SIZE
    buf.writeUInt32LE(e.function >>> 0, o)
    buf.writeUInt32LE(e.index >>> 0, o + 4)
    buf.writeUInt32LE(e.flags >>> 0, o + 8)
    buf.writeUInt32LE(e.eax >>> 0, o + 12)
    buf.writeUInt32LE(e.ebx >>> 0, o + 16)
    buf.writeUInt32LE(e.ecx >>> 0, o + 20)
    buf.writeUInt32LE(e.edx >>> 0, o + 24)
  })
  return buf
}
