/**
 * The kvm backend's stop paths on a real /dev/kvm, counted in /proc/self: a vCPU whose set-up
 * fails after KVM_CREATE_VCPU (KVM refuses an MSR) leaves no vCPU fd, no kvm_run mapping and no
 * thread behind.
 */
import { describe, expect, it } from 'vitest'
import { newFds, newMaps, newThreads, resources } from '../vm/kvm/resources.js'
import { skipReason } from './helpers.js'

// The vCPU worker thread runs compiled JavaScript (dist/, built by `npm run test:kvm`).
const dist = (p: string) => new URL(`../../dist/src/vm/kvm/${p}`, import.meta.url).href

describe.skipIf(skipReason)('kvm backend teardown', () => {
  it('a vCPU whose set-up fails after KVM_CREATE_VCPU releases its fd, run mapping and thread', async () => {
    const { KvmSystem, encodeCpuid } = (await import(dist('system.js'))) as typeof import('../../src/vm/kvm/system.js')
    const { VcpuThread } = (await import(dist('vcpu/thread.js'))) as typeof import('../../src/vm/kvm/vcpu/thread.js')
    const { interruptSignal } = await import('../../native-shims/libc.js')
    const sys = new KvmSystem()
    const vm = sys.createVm()
    try {
      vm.setupInterruptControllers()
      const opts = {
        vmFd: vm.fd,
        id: 0,
        runMmapSize: sys.vcpuMmapSize(),
        cpuid: encodeCpuid(sys.supportedCpuid()),
        msrs: [{ index: 0x4b56_ffff, data: 0 }], // no such MSR: KVM_SET_MSRS sets 0 of 1
        kickSignal: interruptSignal(),
        onAccess: () => ({}),
        onError: () => {},
      }
      const before = resources()
      const th = new VcpuThread(opts)
      await expect(th.ready).rejects.toThrow(/KVM_SET_MSRS set 0 of 1 MSRs/)
      await th.exited
      expect(newFds(before)).toEqual([]) // no anon_inode:kvm-vcpu:0
      expect(newMaps(before).filter((m) => m.includes('kvm-vcpu'))).toEqual([]) // no kvm_run page
      expect(newThreads(before)).toEqual([])

    } finally {
      vm.close()
      sys.close()
    }
  })
})
