/**
 * The VM-wide state KVM keeps in the kernel for our VMM: the two PICs and the IOAPIC
 * (KVM_GET_IRQCHIP), the PIT (KVM_GET_PIT2) and kvmclock's base (KVM_GET_CLOCK). Kept as the
 * ioctls' structs, bytes the same KVM reads back.
 */
import koffi from 'koffi'
import { KVM_IOCTL, KVM_IRQCHIP, kvm_clock_data, kvm_irqchip, kvm_pit_state2, offsetOf } from '../../../../native-shims/kvm/abi.js'
import { ioctlPtr } from '../../../../native-shims/libc.js'

export interface VmState {
  /** PIC master, PIC slave, IOAPIC: kvm_irqchip each. */
  irqchips: Uint8Array[]
  pit: Uint8Array
  clock: Uint8Array
}

export const VM_STATE_SIZES = { irqchip: koffi.sizeof(kvm_irqchip), pit: koffi.sizeof(kvm_pit_state2), clock: koffi.sizeof(kvm_clock_data) } as const
const CHIPS = [KVM_IRQCHIP.PIC_MASTER, KVM_IRQCHIP.PIC_SLAVE, KVM_IRQCHIP.IOAPIC]

const bytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

/** Read with every vCPU out of KVM_RUN, so no interrupt moves between the chips and the LAPICs meanwhile. */
export function saveVmState(vmFd: number): VmState {
  const irqchips = CHIPS.map((chip) => {
    const b = Buffer.alloc(VM_STATE_SIZES.irqchip)
    b.writeUInt32LE(chip, offsetOf(kvm_irqchip, 'chip_id'))
    ioctlPtr(vmFd, KVM_IOCTL.GET_IRQCHIP, b)
    return bytes(b)
  })
  const pit = Buffer.alloc(VM_STATE_SIZES.pit)
  ioctlPtr(vmFd, KVM_IOCTL.GET_PIT2, pit)
  const clock = Buffer.alloc(VM_STATE_SIZES.clock)
  ioctlPtr(vmFd, KVM_IOCTL.GET_CLOCK, clock)
  return { irqchips, pit: bytes(pit), clock: bytes(clock) }
}

/**
 * Into a VM whose irqchip and PIT exist and whose vCPUs do not yet. kvmclock resumes at the saved
 * value (flags cleared: KVM_CLOCK_REALTIME would move it on by the time the snapshot spent on disk;
 * the host sets the guest's wall clock itself after a restore).
 */
export function loadVmState(vmFd: number, s: VmState): void {
  ioctlPtr(vmFd, KVM_IOCTL.SET_PIT2, Buffer.from(s.pit))
  const clock = Buffer.from(s.clock)
  clock.writeUInt32LE(0, offsetOf(kvm_clock_data, 'flags'))
  ioctlPtr(vmFd, KVM_IOCTL.SET_CLOCK, clock)
  for (const chip of s.irqchips) ioctlPtr(vmFd, KVM_IOCTL.SET_IRQCHIP, Buffer.from(chip))
}
