import type { TypeObject } from 'koffi'
import { koffi } from '../koffi.js'

// The x86 KVM userspace ABI (linux/kvm.h, asm/kvm.h) as koffi types, checked member by member
// against gcc by abi-check.ts. Types are anonymous on purpose: koffi type names are process-global
// and a second evaluation of this module (test isolation) would throw "Duplicate type name".
// Members named `_anon*` stand for C anonymous unions.
// Flexible-array structs (kvm_cpuid2, kvm_msrs, kvm_irq_routing) are declared header-only, as C's
// sizeof and the ioctl numbers see them; build entries by hand at `header.size + i * entry.size`.

const k = koffi()
const u8 = 'uint8_t'
const u16 = 'uint16_t'
const u32 = 'uint32_t'
const u64 = 'uint64_t'
const bytes = (n: number) => k.array(u8, n, 'Typed') // not 'String': char[] would decode as text
const arr = (t: string, n: number) => k.array(t, n, 'Typed')

export const kvm_regs = k.struct({
  rax: u64,
  rbx: u64,
  rcx: u64,
  rdx: u64,
  rsi: u64,
  rdi: u64,
  rsp: u64,
  rbp: u64,
  r8: u64,
  r9: u64,
  r10: u64,
  r11: u64,
  r12: u64,
  r13: u64,
  r14: u64,
  r15: u64,
  rip: u64,
  rflags: u64,
})

export const kvm_segment = k.struct({
  base: u64,
  limit: u32,
  selector: u16,
  type: u8,
  present: u8,
  dpl: u8,
  db: u8,
  s: u8,
  l: u8,
  g: u8,
  avl: u8,
  unusable: u8,
  padding: u8,
})

export const kvm_dtable = k.struct({
  base: u64,
  limit: u16,
  padding: arr(u16, 3),
})

export const kvm_sregs = k.struct({
  cs: kvm_segment,
  ds: kvm_segment,
  es: kvm_segment,
  fs: kvm_segment,
  gs: kvm_segment,
  ss: kvm_segment,
  tr: kvm_segment,
  ldt: kvm_segment,
  gdt: kvm_dtable,
  idt: kvm_dtable,
  cr0: u64,
  cr2: u64,
  cr3: u64,
  cr4: u64,
  cr8: u64,
  efer: u64,
  apic_base: u64,
  interrupt_bitmap: arr(u64, 4), // (KVM_NR_INTERRUPTS + 63) / 64
})

export const kvm_fpu = k.struct({
  fpr: k.array(bytes(16), 8),
  fcw: u16,
  fsw: u16,
  ftwx: u8,
  pad1: u8,
  last_opcode: u16,
  last_ip: u64,
  last_dp: u64,
  xmm: k.array(bytes(16), 16),
  mxcsr: u32,
  pad2: u32,
})

export const kvm_userspace_memory_region = k.struct({
  slot: u32,
  flags: u32,
  guest_phys_addr: u64,
  memory_size: u64,
  userspace_addr: u64,
})

// The exit union of kvm_run: only the variants an x86 VMM reads; `padding` fixes its size.
const kvm_run_exit = k.union({
  hw: k.struct({ hardware_exit_reason: u64 }),
  fail_entry: k.struct({ hardware_entry_failure_reason: u64, cpu: u32 }),
  ex: k.struct({ exception: u32, error_code: u32 }),
  io: k.struct({ direction: u8, size: u8, port: u16, count: u32, data_offset: u64 }),
  mmio: k.struct({ phys_addr: u64, data: bytes(8), len: u32, is_write: u8 }),
  internal: k.struct({ suberror: u32, ndata: u32, data: arr(u64, 16) }),
  system_event: k.struct({ type: u32, ndata: u32, _anon0: k.union({ flags: u64, data: arr(u64, 16) }) }),
  padding: bytes(256),
})

export const kvm_run = k.struct({
  request_interrupt_window: u8,
  immediate_exit: u8,
  padding1: bytes(6),
  exit_reason: u32,
  ready_for_interrupt_injection: u8,
  if_flag: u8,
  flags: u16,
  cr8: u64,
  apic_base: u64,
  _anon_exit: kvm_run_exit,
  kvm_valid_regs: u64,
  kvm_dirty_regs: u64,
  // SYNC_REGS_SIZE_BYTES. kvm_sync_regs is not declared; the forced 8 is the alignment it gives the union.
  s: k.union({ padding: [8, bytes(2048)] }),
})

export const kvm_cpuid_entry2 = k.struct({
  function: u32,
  index: u32,
  flags: u32,
  eax: u32,
  ebx: u32,
  ecx: u32,
  edx: u32,
  padding: arr(u32, 3),
})

/** Header of `struct kvm_cpuid2 { nent; padding; kvm_cpuid_entry2 entries[]; }`. */
export const kvm_cpuid2 = k.struct({ nent: u32, padding: u32 })

export const kvm_msr_entry = k.struct({ index: u32, reserved: u32, data: u64 })

/** Header of kvm_msrs; C's alignment comes from the u64 in its flexible kvm_msr_entry[]. */
export const kvm_msrs = k.struct({ nmsrs: [8, u32], pad: u32 })

/** Header of `struct kvm_msr_list { nmsrs; __u32 indices[]; }`. */
export const kvm_msr_list = k.struct({ nmsrs: u32 })

export const kvm_irqfd = k.struct({
  fd: u32,
  gsi: u32,
  flags: u32,
  resamplefd: u32,
  pad: bytes(16),
})

export const kvm_ioeventfd = k.struct({
  datamatch: u64,
  addr: u64,
  len: u32,
  fd: 'int32_t',
  flags: u32,
  pad: bytes(36),
})

export const kvm_pit_config = k.struct({ flags: u32, pad: arr(u32, 15) })

export const kvm_lapic_state = k.struct({ regs: bytes(0x400) }) // KVM_APIC_REG_SIZE

export const kvm_irq_level = k.struct({
  _anon0: k.union({ irq: u32, status: 'int32_t' }),
  level: u32,
})

export const kvm_irq_routing_irqchip = k.struct({ irqchip: u32, pin: u32 })

export const kvm_irq_routing_msi = k.struct({
  address_lo: u32,
  address_hi: u32,
  data: u32,
  _anon0: k.union({ pad: u32, devid: u32 }),
})

export const kvm_irq_routing_s390_adapter = k.struct({
  ind_addr: u64,
  summary_addr: u64,
  ind_offset: u64,
  summary_offset: u32,
  adapter_id: u32,
})

export const kvm_irq_routing_hv_sint = k.struct({ vcpu: u32, sint: u32 })

export const kvm_irq_routing_xen_evtchn = k.struct({ port: u32, vcpu: u32, priority: u32 })

export const kvm_irq_routing_entry = k.struct({
  gsi: u32,
  type: u32,
  flags: u32,
  pad: u32,
  u: k.union({
    irqchip: kvm_irq_routing_irqchip,
    msi: kvm_irq_routing_msi,
    adapter: kvm_irq_routing_s390_adapter,
    hv_sint: kvm_irq_routing_hv_sint,
    xen_evtchn: kvm_irq_routing_xen_evtchn,
    pad: arr(u32, 8),
  }),
})

/** Header of kvm_irq_routing; aligned 8 like its flexible kvm_irq_routing_entry[]. */
export const kvm_irq_routing = k.struct({ nr: [8, u32], flags: u32 })

export const kvm_msi = k.struct({
  address_lo: u32,
  address_hi: u32,
  data: u32,
  flags: u32,
  devid: u32,
  pad: bytes(12),
})

export const kvm_mp_state = k.struct({ mp_state: u32 })

export const kvm_xcr = k.struct({ xcr: u32, reserved: u32, value: u64 })

/** Extended control registers (XCR0 is index 0) for KVM_GET_XCRS / KVM_SET_XCRS. */
export const kvm_xcrs = k.struct({
  nr_xcrs: u32,
  flags: u32,
  xcrs: k.array(kvm_xcr, 16),
  padding: arr(u64, 16),
})

export const kvm_enable_cap = k.struct({
  cap: u32,
  flags: u32,
  args: arr(u64, 4),
  pad: bytes(64),
})

/** The exception, interrupt, NMI and SMI state a vCPU is in between instructions (KVM_GET_VCPU_EVENTS). */
export const kvm_vcpu_events = k.struct({
  exception: k.struct({ injected: u8, nr: u8, has_error_code: u8, pending: u8, error_code: u32 }),
  interrupt: k.struct({ injected: u8, nr: u8, soft: u8, shadow: u8 }),
  nmi: k.struct({ injected: u8, pending: u8, masked: u8, pad: u8 }),
  sipi_vector: u32,
  flags: u32,
  smi: k.struct({ smm: u8, pending: u8, smm_inside_nmi: u8, latched_init: u8 }),
  triple_fault: k.struct({ pending: u8 }),
  reserved: bytes(26),
  exception_has_payload: u8,
  exception_payload: u64,
})

export const kvm_debugregs = k.struct({ db: arr(u64, 4), dr6: u64, dr7: u64, flags: u64, reserved: arr(u64, 9) })

/** The legacy XSAVE area (4 KiB; KVM_GET_XSAVE2 may return more, as KVM_CAP_XSAVE2 says). */
export const kvm_xsave = k.struct({ region: arr(u32, 1024) })

/** One in-kernel interrupt controller's state: PIC master (0), PIC slave (1) or IOAPIC (2). */
export const kvm_irqchip = k.struct({
  chip_id: u32,
  pad: u32,
  // The IOAPIC's state gives the union its 8-byte alignment; redirtbl entries are unions of a u64.
  chip: k.union({ dummy: bytes(512), ioapic: k.struct({ base_address: u64, ioregsel: u32, id: u32, irr: u32, pad: u32, redirtbl: arr(u64, 24) }) }),
})

export const kvm_pit_channel_state = k.struct({
  count: u32,
  latched_count: u16,
  count_latched: u8,
  status_latched: u8,
  status: u8,
  read_state: u8,
  write_state: u8,
  write_latch: u8,
  rw_mode: u8,
  mode: u8,
  bcd: u8,
  gate: u8,
  count_load_time: 'int64_t',
})

export const kvm_pit_state2 = k.struct({ channels: k.array(kvm_pit_channel_state, 3), flags: u32, reserved: arr(u32, 9) })

/** kvmclock's base (KVM_GET_CLOCK / KVM_SET_CLOCK). */
export const kvm_clock_data = k.struct({ clock: u64, flags: u32, pad0: u32, realtime: u64, host_tsc: u64, pad: arr(u32, 4) })

/** Every declared struct by its C tag (`struct <name>`): the list abi-check.ts verifies. */
export const ABI_STRUCTS: Readonly<Record<string, TypeObject>> = {
  kvm_regs,
  kvm_segment,
  kvm_dtable,
  kvm_sregs,
  kvm_fpu,
  kvm_userspace_memory_region,
  kvm_run,
  kvm_cpuid_entry2,
  kvm_cpuid2,
  kvm_msr_entry,
  kvm_msrs,
  kvm_msr_list,
  kvm_irqfd,
  kvm_ioeventfd,
  kvm_pit_config,
  kvm_lapic_state,
  kvm_irq_level,
  kvm_irq_routing_irqchip,
  kvm_irq_routing_msi,
  kvm_irq_routing_s390_adapter,
  kvm_irq_routing_hv_sint,
  kvm_irq_routing_xen_evtchn,
  kvm_irq_routing_entry,
  kvm_irq_routing,
  kvm_msi,
  kvm_mp_state,
  kvm_xcr,
  kvm_xcrs,
  kvm_enable_cap,
  kvm_vcpu_events,
  kvm_debugregs,
  kvm_xsave,
  kvm_irqchip,
  kvm_pit_channel_state,
  kvm_pit_state2,
  kvm_clock_data,
}
