import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseTopology } from '../../runtime/protocol/topology.js'
import { collectBase } from '../../src/image/base.js'
import { GUEST_INIT, GUEST_NODE } from '../../src/image/guest-paths.js'
import { kernelCmdline } from '../../src/vm/backend.js'
import type { DiskSpec } from '../../src/vm/disk.js'
import { type Accel, qemuArgs, qemuOptionValue } from '../../src/vm/qemu/args.js'
import { repoRoot } from '../helpers/repo.js'

const plan = {
  kernel: '/k/bzImage',
  initrd: '/t/initrd.cpio',
  topology: parseTopology('1n1l2c1t'),
  memoryMib: 512,
  disks: [] as DiskSpec[],
  channelSocket: '/t/channel.sock',
  nestedKvm: false,
  shareRam: false,
}
const argsOf = (accel: Accel, p = plan) => qemuArgs(p, accel, p.topology.numaNodes === 1 ? ['/shm/ram-node0'] : ['/shm/ram-node0', '/shm/ram-node1'])

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag)

describe('qemu command line', () => {
  it('runs TCG single-threaded on the max CPU model', () => {
    const args = argsOf('tcg')
    expect(after(args, '-accel')).toEqual(['tcg,thread=single'])
    expect(after(args, '-cpu')).toEqual(['max'])
    expect(args).toContain('-no-reboot')
  })

  it('backs guest RAM with a shared file: the machine memory-backend with one node, a memdev per node with two', () => {
    const one = argsOf('tcg')
    expect(after(one, '-machine')).toEqual(['pc,memory-backend=ram-node0'])
    expect(after(one, '-object')).toEqual(['memory-backend-file,id=ram-node0,size=512M,mem-path=/shm/ram-node0,share=on'])
    expect(after(one, '-numa')).toEqual([])
    const two = argsOf('tcg', { ...plan, topology: parseTopology('2n2l1c1t') })
    expect(after(two, '-machine')).toEqual(['pc'])
    expect(after(two, '-object')).toEqual([
      'memory-backend-file,id=ram-node0,size=256M,mem-path=/shm/ram-node0,share=on',
      'memory-backend-file,id=ram-node1,size=256M,mem-path=/shm/ram-node1,share=on',
    ])
    expect(after(two, '-numa')).toEqual(['node,nodeid=0,cpus=0,memdev=ram-node0', 'node,nodeid=1,cpus=1,memdev=ram-node1'])
  })

  it('uses the host CPU under KVM', () => {
    const args = argsOf('kvm')
    expect(after(args, '-accel')).toEqual(['kvm'])
    expect(after(args, '-cpu')).toEqual(['host'])
  })

  it('wires the console to stdout and the channel to a virtio-serial port named ktstr.0', () => {
    const args = argsOf('tcg')
    expect(after(args, '-serial')).toEqual(['chardev:console'])
    expect(after(args, '-chardev')).toEqual(['stdio,id=console,signal=off', 'socket,id=channel,path=/t/channel.sock'])
    expect(after(args, '-device')).toEqual(['virtio-serial-pci,id=vser0', 'virtserialport,bus=vser0.0,chardev=channel,name=ktstr.0'])
    expect(after(args, '-kernel')).toEqual(['/k/bzImage'])
    expect(after(args, '-initrd')).toEqual(['/t/initrd.cpio'])
  })

  it('starts node as PID 1 with the init script after --, at fixed guest paths', () => {
    const cmd = kernelCmdline()
    expect(cmd).toMatch(/^console=ttyS0 .*panic=-1 .*rdinit=\/ktstr\/node -- \/ktstr\/init\.js$/)
    expect(kernelCmdline({ extra: ['kvm_amd.npt=0'] })).toContain(' kvm_amd.npt=0 rdinit=/ktstr/node -- /ktstr/init.js')
  })

  it('gives a nested guest SVM, and under TCG shadow paging and a TSC tolerance that outlasts its refinement for its KVM', () => {
    const nested = { ...plan, nestedKvm: true }
    expect(after(argsOf('tcg', nested), '-cpu')).toEqual(['max,+svm'])
    expect(after(argsOf('tcg', nested), '-append')[0]).toContain(' kvm_amd.npt=0 kvm.tsc_tolerance_ppm=20000 rdinit=')
    expect(after(argsOf('kvm', nested), '-append')[0]).not.toMatch(/npt=0|tsc_/)
    expect(after(argsOf('tcg'), '-append')).toEqual([kernelCmdline()])
  })

  it('attaches each disk as a virtio-blk drive with QEMU throttling, commas escaped', () => {
    const args = argsOf('tcg', {
      ...plan,
      disks: [
        { path: '/d/a,b.img', readOnly: true, iops: 5 },
        { path: '/d/c.img', readOnly: false },
      ],
    })
    expect(after(args, '-drive')).toEqual([
      'file=/d/a,,b.img,if=none,id=disk0,format=raw,cache=none,aio=threads,readonly=on,throttling.iops-total=5',
      'file=/d/c.img,if=none,id=disk1,format=raw,cache=none,aio=threads',
    ])
    expect(after(args, '-device').slice(-2)).toEqual(['virtio-blk-pci,drive=disk0', 'virtio-blk-pci,drive=disk1'])
  })

  it('escapes commas in the channel socket path (TMPDIR=/tmp/a,b c)', () => {
    const args = argsOf('tcg', { ...plan, channelSocket: '/tmp/a,b c/ktstr-x/channel.sock' })
    expect(after(args, '-chardev')).toContain('socket,id=channel,path=/tmp/a,,b c/ktstr-x/channel.sock')
    expect(qemuOptionValue('a,,b,')).toBe('a,,,,b,,')
  })
})

describe('the base image links what the kernel starts', () => {
  it('has /ktstr/node → this node and /ktstr/init.js → the init script, whatever their host paths', () => {
    const tree = collectBase({ packageRoot: repoRoot })
    expect(tree.get(GUEST_NODE)).toEqual({ kind: 'symlink', target: process.execPath })
    expect(tree.get(GUEST_INIT)).toEqual({ kind: 'symlink', target: path.join(repoRoot, 'dist', 'runtime', 'init', 'init.js') })
    expect(tree.has(process.execPath) && tree.has(path.join(repoRoot, 'dist', 'runtime', 'init', 'init.js'))).toBe(true)
  })
})
