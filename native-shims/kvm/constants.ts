// KVM constants from linux/kvm.h and asm/kvm.h (x86). Each table holds the macros sharing a
// prefix: KVM_EXIT.IO is KVM_EXIT_IO. abi.ts lists the tables for the gcc check. No koffi here.

export const KVMIO = 0xae
export const KVM_API_VERSION = 12
export const KVM_APIC_REG_SIZE = 0x400
export const KVM_NR_INTERRUPTS = 256
export const KVM_IOAPIC_NUM_PINS = 24
export const KVM_PIT_SPEAKER_DUMMY = 1

/** kvm_run.exit_reason */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  WATCHDOG: 21,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  HYPERV: 27,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32,
  X86_BUS_LOCK: 33,
  XEN: 34,
  NOTIFY: 37,
} as const

/** kvm_run.io.direction */
export const KVM_EXIT_IO = { IN: 0, OUT: 1 } as const

/** kvm_run.internal.suberror */
export const KVM_INTERNAL_ERROR = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const

/** kvm_run.system_event.type */
export const KVM_SYSTEM_EVENT = {
  SHUTDOWN: 1,
  RESET: 2,
  CRASH: 3,
  WAKEUP: 4,
  SUSPEND: 5,
  SEV_TERM: 6,
} as const

/** KVM_CHECK_EXTENSION / KVM_ENABLE_CAP arguments a VMM for x86 Linux guests asks about. */
export const KVM_CAP = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  PIT: 11,
  MP_STATE: 14,
  COALESCED_MMIO: 15,
  SYNC_MMU: 16,
  USER_NMI: 22,
  IRQ_ROUTING: 25,
  IRQ_INJECT_STATUS: 26,
  IRQFD: 32,
  PIT2: 33,
  SET_BOOT_CPU_ID: 34,
  PIT_STATE2: 35,
  IOEVENTFD: 36,
  SET_IDENTITY_MAP_ADDR: 37,
  ADJUST_CLOCK: 39,
  INTERNAL_ERROR_DATA: 40,
  VCPU_EVENTS: 41,
  DEBUGREGS: 50,
  ENABLE_CAP: 54,
  XSAVE: 55,
  XCRS: 56,
  TSC_CONTROL: 60,
  GET_TSC_KHZ: 61,
  MAX_VCPUS: 66,
  ONE_REG: 70,
  TSC_DEADLINE_TIMER: 72,
  SYNC_REGS: 74,
  KVMCLOCK_CTRL: 76,
  SIGNAL_MSI: 77,
  READONLY_MEM: 81,
  IRQFD_RESAMPLE: 82,
  ENABLE_CAP_VM: 98,
  IOEVENTFD_NO_LENGTH: 100,
  CHECK_EXTENSION_VM: 105,
  SPLIT_IRQCHIP: 121,
  IOEVENTFD_ANY_LENGTH: 122,
  MAX_VCPU_ID: 128,
  X2APIC_API: 129,
  MSI_DEVID: 131,
  IMMEDIATE_EXIT: 136,
  X86_DISABLE_EXITS: 143,
  EXCEPTION_PAYLOAD: 164,
  X86_USER_SPACE_MSR: 188,
  X86_MSR_FILTER: 189,
  XSAVE2: 208,
  SYSTEM_EVENT_DATA: 215,
} as const

/** kvm_userspace_memory_region.flags */
export const KVM_MEM = { LOG_DIRTY_PAGES: 1, READONLY: 2 } as const

/** kvm_irqfd.flags */
export const KVM_IRQFD_FLAG = { DEASSIGN: 1, RESAMPLE: 2 } as const

/** kvm_ioeventfd.flags */
export const KVM_IOEVENTFD_FLAG = { DATAMATCH: 1, PIO: 2, DEASSIGN: 4 } as const

/** kvm_irq_routing_entry.type */
export const KVM_IRQ_ROUTING = { IRQCHIP: 1, MSI: 2, S390_ADAPTER: 3, HV_SINT: 4, XEN_EVTCHN: 5 } as const

/** kvm_irq_routing_irqchip.irqchip */
export const KVM_IRQCHIP = { PIC_MASTER: 0, PIC_SLAVE: 1, IOAPIC: 2 } as const

/** kvm_mp_state.mp_state (x86 uses the first five) */
export const KVM_MP_STATE = {
  RUNNABLE: 0,
  UNINITIALIZED: 1,
  INIT_RECEIVED: 2,
  HALTED: 3,
  SIPI_RECEIVED: 4,
} as const

/** kvm_cpuid_entry2.flags (the header's spelling: SIGNIFCANT) */
export const KVM_CPUID_FLAG = { SIGNIFCANT_INDEX: 1, STATEFUL_FUNC: 2, STATE_READ_NEXT: 4 } as const

/** KVM_ENABLE_CAP(KVM_CAP_X86_DISABLE_EXITS) args[0] */
export const KVM_X86_DISABLE_EXITS = { MWAIT: 1, HLT: 2, PAUSE: 4, CSTATE: 8 } as const

/** The name of an exit reason for messages, e.g. 2 → 'KVM_EXIT_IO'. */
export function exitReasonName(reason: number): string {
  for (const [name, v] of Object.entries(KVM_EXIT)) if (v === reason) return `KVM_EXIT_${name}`
  return `KVM_EXIT_${reason}`
}
