/**
 * The kvm backend's stop paths on a real /dev/kvm, counted in /proc/self: a vCPU whose set-up
 * fails after KVM_CREATE_VCPU (KVM refuses an MSR) leaves no vCPU fd, no kvm_run mapping and no
 * thread behind; nor does a whole VM (two vCPUs, a disk served by its blk worker) once it stopped.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolveTopology } from '../../runtime/protocol/presets.js'
import { CpioWriter, MemorySink } from '../../src/image/cpio.js'
import { testKernel } from '../helpers/repo.js'
import { newFds, newMaps, newThreads, resources } from '../vm/kvm/resources.js'
import { skipReason } from './helpers.js'

/** Mappings of a VM: guest RAM (shared anonymous memory shows as /dev/zero) and kvm_run pages. */
const vmMaps = (lines: string[]) => lines.filter((l) => /\/dev\/zero|kvm/.test(l))

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

  it('a whole VM that stopped leaves no fd, mapping or thread: 2 vCPUs, guest RAM, a disk and its blk worker', async () => {
    const { launchKvm } = (await import(dist('launch.js'))) as typeof import('../../src/vm/kvm/launch.js')
    const { ConsoleLog } = (await import(new URL('../../dist/src/vm/console.js', import.meta.url).href)) as typeof import('../../src/vm/console.js')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-teardown-'))
    try {
      // An initramfs without /init: the kernel probes its devices (the disk's driver activates it,
      // starting the blk worker), panics, and with panic=-1 resets the machine at once. loglevel=6
      // keeps the console short (each UART byte is an exit handed to the main thread) but shows
      // virtio_blk's notice.
      const sink = new MemorySink()
      const cpio = new CpioWriter(sink)
      await cpio.dir('dev')
      await cpio.finish()
      const initrd = path.join(dir, 'initrd.cpio')
      fs.writeFileSync(initrd, sink.toBuffer())
      const disk = path.join(dir, 'disk.img')
      fs.writeFileSync(disk, Buffer.alloc(1 << 20))
      const bzImage = fs.statSync(testKernel!).isDirectory() ? path.join(testKernel!, 'bzImage') : testKernel!
      const plan = {
        kernel: bzImage,
        initrd,
        cmdline: 'console=ttyS0 loglevel=6 panic=-1 reboot=k',
        topology: resolveTopology('1n1l2c1t'),
        memoryMib: 256,
        disks: [{ path: disk, readOnly: false }],
      }
      // Warm-up: koffi, libc and the worker machinery load once per process and stay.
      await (await launchKvm(plan, new ConsoleLog())).exited

      const before = resources()
      const kernelLog = new ConsoleLog(5000)
      const vm = await launchKvm(plan, kernelLog)
      expect(vmMaps(newMaps(before)).length).toBeGreaterThanOrEqual(3) // RAM and two run pages
      expect(newThreads(before).length).toBeGreaterThanOrEqual(2)
      expect(newFds(before).some((f) => f.endsWith(disk))).toBe(true)
      const exit = await vm.exited
      expect(exit.code).toBe(0) // the reset
      expect(kernelLog.tail(5000).join('\n')).toMatch(/virtio_blk virtio1: .*\[vda\]/)
      expect(newFds(before)).toEqual([])
      expect(vmMaps(newMaps(before))).toEqual([])
      expect(newThreads(before)).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
