/**
 * A backend is a VMM that starts a guest from a LaunchPlan: `qemu` (./qemu/backend.ts) or our
 * own `kvm` (./kvm/backend.ts). Each wires the disks and the channel its own way.
 */

import type { TopologySpec } from '../../runtime/protocol/topology.js'
import { GUEST_INIT, GUEST_NODE } from '../image/guest-paths.js'
import type { ConsoleLog } from './console.js'
import type { DiskSpec } from './disk.js'
import type { VmProcess } from './vm-process.js'

/** What every backend needs to start one guest. */
export interface LaunchPlan {
  /** The bzImage. */
  kernel: string
  initrd: string
  topology: TopologySpec
  memoryMib: number
  /** virtio-blk disks, in order: /dev/vda, /dev/vdb, … */
  disks: readonly DiskSpec[]
  /** The base image as a read-only ext4 disk (image/disk-boot.ts), attached after `disks`. */
  baseDisk?: string
  /** A unix socket path in the run folder, for a backend whose channel needs one (QEMU's). */
  channelSocket: string
  /** Give the guest AMD SVM so it can run KVM itself. */
  nestedKvm: boolean
  /** The host reads guest RAM (the monitor is on): QEMU puts it in files the host maps too. */
  shareRam: boolean
  /**
   * Warm start (../warm/): `save` boots a template guest whose VmProcess can `saveSnapshot`;
   * `restore` (set by prepareRestore) starts the VMM waiting for a snapshot instead of booting (the
   * kernel and initrd are then not read). Absent: a cold boot.
   */
  snapshot?: { kind: 'save' } | { kind: 'restore' }
}

/**
 * A VMM started for a guest of a plan's shape before the caller knows which snapshot it restores:
 * its start overlaps the caller's work on the snapshot's key.
 */
export interface PendingRestore {
  /** Restore the snapshot `file` (of this shape); the guest then runs. Once only. */
  restore(file: string): Promise<VmProcess>
  /** Not needed after all: the VMM is stopped. No-op after restore(). */
  abandon(): void
}

export interface Backend {
  /** Boot a guest (a cold boot, or a template with `snapshot: save`). */
  launch(plan: LaunchPlan, console: ConsoleLog): Promise<VmProcess>
  /** Start the VMM for a restore of `plan`'s shape (backends with snapshots). */
  prepareRestore?(plan: LaunchPlan, console: ConsoleLog): PendingRestore
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
    // panic → reboot at once → the VMM exits; the host reads the panic from the console.
    'panic=-1',
    'reboot=k',
    ...(opts.extra ?? []),
    `rdinit=${GUEST_NODE}`,
    '--',
    GUEST_INIT,
  ].join(' ')
}
