/**
 * The KVM ABI in practice: a raw real-mode guest through native-shims (VM, memory slot, vCPU,
 * sregs/regs, KVM_RUN, the mmap'd kvm_run page). If this fails, no VMM built on the shims can work.
 */
import koffi from 'koffi'
import { describe, expect, it } from 'vitest'
import { MAP_ANONYMOUS, MAP_SHARED, O_CLOEXEC, O_RDWR, PROT_READ, PROT_WRITE } from '../../native-shims/constants.js'
import { KVM_API_VERSION, KVM_EXIT, KVM_IOCTL, kvm_regs, kvm_sregs, kvm_userspace_memory_region, offsetOf, RUN_OFFSETS } from '../../native-shims/kvm/abi.js'
import { close, ioctlPtr, ioctlVal, mmap, open, view } from '../../native-shims/libc.js'

// mov dx,0x3f8; mov al,'K'; out dx,al; mov al,'\n'; out dx,al; hlt
const CODE = [0xba, 0xf8, 0x03, 0xb0, 0x4b, 0xee, 0xb0, 0x0a, 0xee, 0xf4]
const MEM = 0x10000
const ENTRY = 0x1000

describe('raw KVM through native-shims', () => {
  it('runs a real-mode guest: two port writes, then HLT', () => {
    const kvm = open('/dev/kvm', O_RDWR | O_CLOEXEC)
    expect(ioctlVal(kvm, KVM_IOCTL.GET_API_VERSION, 0)).toBe(KVM_API_VERSION)
    const vm = ioctlVal(kvm, KVM_IOCTL.CREATE_VM, 0)
    const mem = mmap(MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    new Uint8Array(view(mem, MEM)).set(CODE, ENTRY)
    const region = koffi.as({ slot: 0, flags: 0, guest_phys_addr: 0, memory_size: MEM, userspace_addr: mem }, koffi.pointer(kvm_userspace_memory_region))
    expect(ioctlPtr(vm, KVM_IOCTL.SET_USER_MEMORY_REGION, region as never)).toBe(0)
    const vcpu = ioctlVal(vm, KVM_IOCTL.CREATE_VCPU, 0)
    const runSize = ioctlVal(kvm, KVM_IOCTL.GET_VCPU_MMAP_SIZE, 0)
    const run = new DataView(view(mmap(runSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0), runSize))

    const sregs = Buffer.alloc(koffi.sizeof(kvm_sregs))
    ioctlPtr(vcpu, KVM_IOCTL.GET_SREGS, sregs)
    sregs.writeBigUInt64LE(0n, offsetOf(kvm_sregs, 'cs.base'))
    sregs.writeUInt16LE(0, offsetOf(kvm_sregs, 'cs.selector'))
    ioctlPtr(vcpu, KVM_IOCTL.SET_SREGS, sregs)
    const regs = Buffer.alloc(koffi.sizeof(kvm_regs))
    regs.writeBigUInt64LE(BigInt(ENTRY), offsetOf(kvm_regs, 'rip'))
    regs.writeBigUInt64LE(2n, offsetOf(kvm_regs, 'rflags'))
    ioctlPtr(vcpu, KVM_IOCTL.SET_REGS, regs)

    const out: string[] = []
    let exits = 0
    for (;;) {
      ioctlVal(vcpu, KVM_IOCTL.RUN, 0)
      exits++
      const reason = run.getUint32(RUN_OFFSETS.exit_reason, true)
      if (reason === KVM_EXIT.IO) {
        expect(run.getUint16(RUN_OFFSETS.io_port, true)).toBe(0x3f8)
        const off = Number(run.getBigUint64(RUN_OFFSETS.io_data_offset, true))
        out.push(String.fromCharCode(run.getUint8(off)))
        continue
      }
      expect(reason).toBe(KVM_EXIT.HLT)
      break
    }
    expect(out.join('')).toBe('K\n')
    expect(exits).toBe(3)
    close(vcpu)
    close(vm)
    close(kvm)
  })
})
