import { describe, expect, it } from 'vitest'
import { parseTopology } from '../../src/topology/topology.js'
import { kernelCmdline, qemuArgs } from '../../src/vm/qemu/args.js'

const plan = (accel: 'kvm' | 'tcg') => ({
  kernel: '/k/bzImage',
  initrd: '/t/initrd.cpio',
  cmdline: 'console=ttyS0',
  topology: parseTopology('1n1l2c1t'),
  memoryMib: 512,
  channelSocket: '/t/channel.sock',
  accel,
})

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag)

describe('qemu command line', () => {
  it('runs TCG single-threaded on the max CPU model', () => {
    const args = qemuArgs(plan('tcg'))
    expect(after(args, '-accel')).toEqual(['tcg,thread=single'])
    expect(after(args, '-cpu')).toEqual(['max'])
    expect(args).toContain('-no-reboot')
  })

  it('uses the host CPU under KVM', () => {
    const args = qemuArgs(plan('kvm'))
    expect(after(args, '-accel')).toEqual(['kvm'])
    expect(after(args, '-cpu')).toEqual(['host'])
  })

  it('wires the console to stdout and the channel to a virtio-serial port named ktstr.0', () => {
    const args = qemuArgs(plan('tcg'))
    expect(after(args, '-serial')).toEqual(['chardev:console'])
    expect(after(args, '-chardev')).toEqual(['stdio,id=console,signal=off', 'socket,id=channel,path=/t/channel.sock'])
    expect(after(args, '-device')).toEqual(['virtio-serial-pci,id=vser0', 'virtserialport,bus=vser0.0,chardev=channel,name=ktstr.0'])
    expect(after(args, '-kernel')).toEqual(['/k/bzImage'])
    expect(after(args, '-initrd')).toEqual(['/t/initrd.cpio'])
  })

  it('starts node as PID 1 with the init script after --', () => {
    const cmd = kernelCmdline({ nodePath: '/usr/bin/node', initScript: '/p/dist/runtime/init/main.js' })
    expect(cmd).toMatch(/^console=ttyS0 .*panic=-1 .*rdinit=\/usr\/bin\/node -- \/p\/dist\/runtime\/init\/main\.js$/)
  })
})
