import {
  KVM_API_VERSION,
  KVM_APIC_REG_SIZE,
  KVM_CAP,
  KVM_CPUID_FLAG,
  KVM_EXIT,
  KVM_EXIT_IO,
  KVM_INTERNAL_ERROR,
  KVM_IOAPIC_NUM_PINS,
  KVM_IOEVENTFD_FLAG,
  KVM_IRQ_ROUTING,
  KVM_IRQCHIP,
  KVM_IRQFD_FLAG,
  KVM_MEM,
  KVM_MP_STATE,
  KVM_NR_INTERRUPTS,
  KVM_PIT_SPEAKER_DUMMY,
  KVM_SYSTEM_EVENT,
  KVM_X86_DISABLE_EXITS,
  KVMIO,
} from './constants.js'
import { _IO, _IOR, _IOW, _IOWR } from './ioctl-encoding.js'
import { offsetOf } from './layout.js'
import {
  kvm_clock_data,
  kvm_cpuid2,
  kvm_debugregs,
  kvm_enable_cap,
  kvm_fpu,
  kvm_ioeventfd,
  kvm_irq_level,
  kvm_irq_routing,
  kvm_irqchip,
  kvm_irqfd,
  kvm_lapic_state,
  kvm_mp_state,
  kvm_msi,
  kvm_msr_list,
  kvm_msrs,
  kvm_pit_config,
  kvm_pit_state2,
  kvm_regs,
  kvm_run,
  kvm_sregs,
  kvm_userspace_memory_region,
  kvm_vcpu_events,
  kvm_xcrs,
  kvm_xsave,
} from './structs.js'

export * from './constants.js'
export { _IO, _IOC, _IOR, _IOW, _IOWR } from './ioctl-encoding.js'
export { memberAt, offsetOf } from './layout.js'
export * from './structs.js'

/** ioctl request numbers, computed from the koffi struct sizes. KVM_IOCTL.RUN is C's KVM_RUN. */
export const KVM_IOCTL = {
  // /dev/kvm
  GET_API_VERSION: _IO(KVMIO, 0x00),
  CREATE_VM: _IO(KVMIO, 0x01),
  GET_MSR_INDEX_LIST: _IOWR(KVMIO, 0x02, kvm_msr_list),
  CHECK_EXTENSION: _IO(KVMIO, 0x03),
  GET_VCPU_MMAP_SIZE: _IO(KVMIO, 0x04),
  GET_SUPPORTED_CPUID: _IOWR(KVMIO, 0x05, kvm_cpuid2),
  GET_EMULATED_CPUID: _IOWR(KVMIO, 0x09, kvm_cpuid2),
  // VM fd
  CREATE_VCPU: _IO(KVMIO, 0x41),
  SET_USER_MEMORY_REGION: _IOW(KVMIO, 0x46, kvm_userspace_memory_region),
  SET_TSS_ADDR: _IO(KVMIO, 0x47),
  SET_IDENTITY_MAP_ADDR: _IOW(KVMIO, 0x48, 8), // __u64
  CREATE_IRQCHIP: _IO(KVMIO, 0x60),
  IRQ_LINE: _IOW(KVMIO, 0x61, kvm_irq_level),
  GET_IRQCHIP: _IOWR(KVMIO, 0x62, kvm_irqchip),
  SET_IRQCHIP: _IOR(KVMIO, 0x63, kvm_irqchip), // sic: the header encodes it as a read
  IRQ_LINE_STATUS: _IOWR(KVMIO, 0x67, kvm_irq_level),
  SET_GSI_ROUTING: _IOW(KVMIO, 0x6a, kvm_irq_routing),
  IRQFD: _IOW(KVMIO, 0x76, kvm_irqfd),
  CREATE_PIT2: _IOW(KVMIO, 0x77, kvm_pit_config),
  SET_CLOCK: _IOW(KVMIO, 0x7b, kvm_clock_data),
  GET_CLOCK: _IOR(KVMIO, 0x7c, kvm_clock_data),
  GET_PIT2: _IOR(KVMIO, 0x9f, kvm_pit_state2),
  SET_PIT2: _IOW(KVMIO, 0xa0, kvm_pit_state2),
  SET_BOOT_CPU_ID: _IO(KVMIO, 0x78),
  IOEVENTFD: _IOW(KVMIO, 0x79, kvm_ioeventfd),
  SET_TSC_KHZ: _IO(KVMIO, 0xa2),
  GET_TSC_KHZ: _IO(KVMIO, 0xa3),
  SIGNAL_MSI: _IOW(KVMIO, 0xa5, kvm_msi),
  ENABLE_CAP: _IOW(KVMIO, 0xa3, kvm_enable_cap), // VM and vCPU fds
  // vCPU fd
  RUN: _IO(KVMIO, 0x80),
  GET_REGS: _IOR(KVMIO, 0x81, kvm_regs),
  SET_REGS: _IOW(KVMIO, 0x82, kvm_regs),
  GET_SREGS: _IOR(KVMIO, 0x83, kvm_sregs),
  SET_SREGS: _IOW(KVMIO, 0x84, kvm_sregs),
  GET_MSRS: _IOWR(KVMIO, 0x88, kvm_msrs),
  SET_MSRS: _IOW(KVMIO, 0x89, kvm_msrs),
  GET_FPU: _IOR(KVMIO, 0x8c, kvm_fpu),
  SET_FPU: _IOW(KVMIO, 0x8d, kvm_fpu),
  GET_LAPIC: _IOR(KVMIO, 0x8e, kvm_lapic_state),
  SET_LAPIC: _IOW(KVMIO, 0x8f, kvm_lapic_state),
  SET_CPUID2: _IOW(KVMIO, 0x90, kvm_cpuid2),
  GET_CPUID2: _IOWR(KVMIO, 0x91, kvm_cpuid2),
  GET_MP_STATE: _IOR(KVMIO, 0x98, kvm_mp_state),
  SET_MP_STATE: _IOW(KVMIO, 0x99, kvm_mp_state),
  NMI: _IO(KVMIO, 0x9a),
  GET_VCPU_EVENTS: _IOR(KVMIO, 0x9f, kvm_vcpu_events),
  SET_VCPU_EVENTS: _IOW(KVMIO, 0xa0, kvm_vcpu_events),
  GET_DEBUGREGS: _IOR(KVMIO, 0xa1, kvm_debugregs),
  SET_DEBUGREGS: _IOW(KVMIO, 0xa2, kvm_debugregs),
  GET_XSAVE: _IOR(KVMIO, 0xa4, kvm_xsave),
  SET_XSAVE: _IOW(KVMIO, 0xa5, kvm_xsave),
  GET_XSAVE2: _IOR(KVMIO, 0xcf, kvm_xsave),
  KVMCLOCK_CTRL: _IO(KVMIO, 0xad),
  GET_XCRS: _IOR(KVMIO, 0xa6, kvm_xcrs),
  SET_XCRS: _IOW(KVMIO, 0xa7, kvm_xcrs),
} as const

/** Every numeric table with its C macro prefix: the constants abi-check.ts verifies against gcc. */
export const ABI_CONSTANTS: ReadonlyArray<readonly [prefix: string, table: Readonly<Record<string, number>>]> = [
  ['KVM_', KVM_IOCTL],
  ['', { KVMIO, KVM_API_VERSION, KVM_APIC_REG_SIZE, KVM_NR_INTERRUPTS, KVM_IOAPIC_NUM_PINS, KVM_PIT_SPEAKER_DUMMY }],
  ['KVM_EXIT_', KVM_EXIT],
  ['KVM_EXIT_IO_', KVM_EXIT_IO],
  ['KVM_INTERNAL_ERROR_', KVM_INTERNAL_ERROR],
  ['KVM_SYSTEM_EVENT_', KVM_SYSTEM_EVENT],
  ['KVM_CAP_', KVM_CAP],
  ['KVM_MEM_', KVM_MEM],
  ['KVM_IRQFD_FLAG_', KVM_IRQFD_FLAG],
  ['KVM_IOEVENTFD_FLAG_', KVM_IOEVENTFD_FLAG],
  ['KVM_IRQ_ROUTING_', KVM_IRQ_ROUTING],
  ['KVM_IRQCHIP_', KVM_IRQCHIP],
  ['KVM_MP_STATE_', KVM_MP_STATE],
  ['KVM_CPUID_FLAG_', KVM_CPUID_FLAG],
  ['KVM_X86_DISABLE_EXITS_', KVM_X86_DISABLE_EXITS],
]

const run = (path: string) => offsetOf(kvm_run, path)
const exit = (path: string) => run(`_anon_exit.${path}`)

/**
 * Byte offsets into the mmap'd kvm_run page, for DataView access in the vCPU loop (object
 * marshalling costs microseconds per exit). Little-endian, as x86 is.
 */
export const RUN_OFFSETS = {
  request_interrupt_window: run('request_interrupt_window'),
  immediate_exit: run('immediate_exit'),
  exit_reason: run('exit_reason'),
  ready_for_interrupt_injection: run('ready_for_interrupt_injection'),
  if_flag: run('if_flag'),
  flags: run('flags'),
  cr8: run('cr8'),
  apic_base: run('apic_base'),
  hw_exit_reason: exit('hw.hardware_exit_reason'),
  fail_entry_reason: exit('fail_entry.hardware_entry_failure_reason'),
  fail_entry_cpu: exit('fail_entry.cpu'),
  ex_exception: exit('ex.exception'),
  ex_error_code: exit('ex.error_code'),
  io_direction: exit('io.direction'),
  io_size: exit('io.size'),
  io_port: exit('io.port'),
  io_count: exit('io.count'),
  /** u64 offset of the I/O data, relative to the start of kvm_run. */
  io_data_offset: exit('io.data_offset'),
  mmio_phys_addr: exit('mmio.phys_addr'),
  mmio_data: exit('mmio.data'),
  mmio_len: exit('mmio.len'),
  mmio_is_write: exit('mmio.is_write'),
  internal_suberror: exit('internal.suberror'),
  internal_ndata: exit('internal.ndata'),
  internal_data: exit('internal.data'),
  system_event_type: exit('system_event.type'),
  system_event_ndata: exit('system_event.ndata'),
  system_event_data: exit('system_event._anon0.data'),
  kvm_valid_regs: run('kvm_valid_regs'),
  kvm_dirty_regs: run('kvm_dirty_regs'),
  s: run('s'),
} as const
