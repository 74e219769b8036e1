/**
 * The QEMU command line for one guest. Pure: everything it needs is in QemuPlan.
 */
import type { TopologySpec as Topology } from '../../../runtime/protocol/topology.js'
import { topologyArgs } from './topology-args.js'
import { CHANNEL_PORT_NAME } from '../../../runtime/protocol/index.js'
import { GUEST_INIT, GUEST_NODE } from '../../image/guest-paths.js'

export interface QemuPlan {
  kernel: string
  initrd: string
  cmdline: string
  topology: Topology
  memoryMib: number
  /** Unix socket the host listens on; QEMU connects to it as the channel's backend. */
  channelSocket: string
  accel: 'kvm' | 'tcg'
  /** Expose SVM to the guest so it can run KVM itself. */
  nestedKvm?: boolean
  /** Extra `-drive`/`-device` pairs (virtio-blk disks, later). */
  extra?: string[]
}

export function qemuArgs(p: QemuPlan): string[] {
  return [
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-no-reboot',
    '-machine', 'pc',
    // Multi-threaded TCG corrupts the kernel's text patching when sched_ext flips static keys
    // (../shared/notes/qemu-guest.md, addendum), so TCG runs single-threaded.
    ...(p.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', p.nestedKvm ? 'max,+svm' : 'max']),
    ...topologyArgs(p.topology, p.memoryMib),
    '-kernel', p.kernel,
    '-initrd', p.initrd,
    '-append', p.cmdline,
    // Kernel console (ttyS0) on QEMU's stdout.
    '-chardev', 'stdio,id=console,signal=off',
    '-serial', 'chardev:console',
    // The channel: a virtio-serial port named ktstr.0, backed by the host's unix socket.
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', `socket,id=channel,path=${qemuOptionValue(p.channelSocket)}`,
    '-device', `virtserialport,bus=vser0.0,chardev=channel,name=${CHANNEL_PORT_NAME}`,
    ...(p.extra ?? []),
  ]
}

/**
 * Kernel command line: node as PID 1 running the ktstr init (args after `--` go to init), both
 * at fixed guest paths (image/guest-paths.ts), so a host path never needs quoting here.
 */
export function kernelCmdline(opts: { extra?: string[] } = {}): string {
  return [
    'console=ttyS0',
    // KTSTR_KERNEL_ARGS (e.g. "loglevel=7") replaces the default quiet console, for debugging boots.
    ...(process.env.KTSTR_KERNEL_ARGS ? process.env.KTSTR_KERNEL_ARGS.split(/\s+/) : ['quiet']),
    // panic → reboot at once → QEMU exits (-no-reboot); the host reads the panic from the console.
    'panic=-1',
    'reboot=k',
    ...(opts.extra ?? []),
    `rdinit=${GUEST_NODE}`,
    '--',
    GUEST_INIT,
  ].join(' ')
}

/** A value inside a QEMU option string (`-chardev socket,path=…`): a comma is written as two. */
export function qemuOptionValue(value: string): string {
  return value.replace(/,/g, ',,')
}
