/**
 * The QEMU command line for one guest. Pure: everything it needs is in the LaunchPlan.
 */

import { CHANNEL_PORT_NAME } from '../../../runtime/protocol/index.js'
import { kernelCmdline, type LaunchPlan } from '../backend.js'
import type { DiskSpec } from '../disk.js'
import { qemuOptionValue } from './option-value.js'
import { ramBackendId, topologyArgs } from './topology-args.js'

export type Accel = 'kvm' | 'tcg'

/**
 * `ramFiles`: the guest RAM's backing file per NUMA node (ram-backing.ts); undefined for anonymous RAM.
 * `qmpSocket`: a QMP server socket for a plan with `snapshot` (snapshot.ts drives it). A restored
 * guest must be built exactly as the saved one was, so the snapshot changes nothing else here but
 * `-incoming defer` (the state then comes through QMP `migrate-incoming`).
 */
export function qemuArgs(p: LaunchPlan, accel: Accel, ramFiles?: readonly string[], qmpSocket?: string): string[] {
  // Under QEMU's TCG (7.2) emulation of SVM nested paging, guests of the inner KVM hang at random
  // points (a vCPU whose LAPIC timer never fires, a spinlock whose release is never seen); with
  // shadow paging (npt=0) they boot, so the guest's KVM gets that.
  // kvm.tsc_tolerance_ppm: KVM takes the TSC rate at its init, and a second later the kernel refines
  // its calibration by up to 1% (arch/x86/kernel/tsc.c). Under TCG that moved it by more than KVM's
  // default 250 ppm in some boots: every inner vCPU made after it got "kvm: user requested TSC rate
  // below hardware speed" (no TSC scaling under TCG) and no timer interrupts; each inner sleep and
  // scheduler attach hung. Within the tolerance KVM keeps the TSC unscaled.
  const cmdline = kernelCmdline({ extra: p.nestedKvm && accel === 'tcg' ? ['kvm_amd.npt=0', 'kvm.tsc_tolerance_ppm=20000'] : [] })
  return [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-machine',
    // One node: the machine's RAM is the one backend; more: each -numa node brings its memdev.
    p.topology.numaNodes === 1 ? `pc,memory-backend=${ramBackendId(0)}` : 'pc',
    // Multi-threaded TCG corrupts the kernel's text patching when sched_ext flips static keys
    // (docs/tcg.md), so TCG runs single-threaded.
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', p.nestedKvm ? 'max,+svm' : 'max']),
    ...topologyArgs(p.topology, p.memoryMib, ramFiles),
    '-kernel',
    p.kernel,
    '-initrd',
    p.initrd,
    '-append',
    cmdline,
    // Kernel console (ttyS0) on QEMU's stdout.
    '-chardev',
    'stdio,id=console,signal=off',
    '-serial',
    'chardev:console',
    // The channel: a virtio-serial port named ktstr.0, backed by the host's unix socket.
    '-device',
    'virtio-serial-pci,id=vser0',
    '-chardev',
    `socket,id=channel,path=${qemuOptionValue(p.channelSocket)}`,
    '-device',
    `virtserialport,bus=vser0.0,chardev=channel,name=${CHANNEL_PORT_NAME}`,
    ...p.disks.flatMap(diskArgs),
    ...(p.baseDisk ? baseDiskArgs(p.baseDisk, p.disks.length) : []),
    ...(qmpSocket ? ['-qmp', `unix:${qemuOptionValue(qmpSocket)},server=on,wait=off`] : []),
    ...(p.snapshot?.kind === 'restore' ? ['-incoming', 'defer'] : []),
  ]
}

/** The read-only base image, through the host's page cache (it is read by every boot). */
function baseDiskArgs(file: string, index: number): string[] {
  const drive = [`file=${qemuOptionValue(file)}`, 'if=none', `id=disk${index}`, 'format=raw', 'readonly=on'].join(',')
  return ['-drive', drive, '-device', `virtio-blk-pci,drive=disk${index}`]
}

export { qemuOptionValue }

/** QEMU's virtio-blk for a disk, with QEMU's own throttling (block/throttle-groups). */
export function diskArgs(d: DiskSpec, index: number): string[] {
  const drive = [
    `file=${qemuOptionValue(d.path)}`,
    'if=none',
    `id=disk${index}`,
    'format=raw',
    'cache=none',
    'aio=threads',
    ...(d.readOnly ? ['readonly=on'] : []),
    ...(d.iops ? [`throttling.iops-total=${d.iops}`] : []),
    ...(d.bps ? [`throttling.bps-total=${d.bps}`] : []),
  ].join(',')
  return ['-drive', drive, '-device', `virtio-blk-pci,drive=disk${index}`]
}
