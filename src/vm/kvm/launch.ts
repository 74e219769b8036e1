/**
 * The kvm backend: our own VMM on /dev/kvm. launchKvm builds the machine in order — guest RAM,
 * the legacy devices, the virtio-console channel, the virtio-blk disks, the ACPI tables, the
 * kernel, the vCPUs — and returns it running. Device register accesses are answered on the main
 * thread; each vCPU runs in its own thread (vcpu/), each disk's requests in its blk thread.
 */
import fs from 'node:fs'
import path from 'node:path'
import { KVM_CAP } from '../../../native-shims/kvm/abi.js'
import type { TopologySpec as Topology } from '../../../runtime/protocol/topology.js'
import { partPath } from '../../image/cache-entry.js'
import { KtstrError } from '../../util/errors.js'
import { log } from '../../util/log.js'
import { copySparse } from '../../util/sparse-copy.js'
import type { ConsoleLog } from '../console.js'
import type { DiskSpec } from '../disk.js'
import type { GuestMemory } from '../memory/guest-memory.js'
import { ramFolderParent } from '../memory/shared-file.js'
import { createRunDir, removeRunDir } from '../run-dir.js'
import type { VmExit, VmProcess } from '../vm-process.js'
import { buildAcpiTables, writeAcpiTables } from './arch/x86_64/acpi/tables.js'
import { addKernelParams } from './arch/x86_64/boot/cmdline.js'
import type { EntryState } from './arch/x86_64/boot/cpu-state.js'
import { loadLinux } from './arch/x86_64/boot/loader.js'
import { KVM_PV_FEATURE, type KvmPvFeature } from './arch/x86_64/cpuid.js'
import { Bus } from './io-bus.js'
import { attachLegacyDevices } from './legacy/attach.js'
import { type HostRam, mapHostRam, type RamBacking } from './memory/host-ram.js'
import { type MemoryLayout, MiB, x86MemoryLayout } from './memory/layout.js'
import { readKvmSnapshot, writeKvmSnapshot } from './snapshot/format.js'
import { loadVmState, saveVmState } from './snapshot/vm-state.js'
import { KvmSystem, type KvmVm } from './system.js'
import { createVcpus, startVcpus } from './vcpu/create.js'
import { TerminalReason } from './vcpu/protocol.js'
import { readVcpuRegisters } from './vcpu/registers.js'
import { type VcpuState, XSAVE_LEGACY_SIZE } from './vcpu/state.js'
import type { VcpuExit, VcpuThread } from './vcpu/thread.js'
import { attachDisks, type KvmDisks } from './virtio/block/disks.js'
import { attachConsole } from './virtio/console/attach.js'

export interface KvmPlan {
  kernel: string
  initrd: string
  cmdline: string
  topology: Topology
  memoryMib: number
  /** virtio-blk disks, in order: /dev/vda, /dev/vdb, … */
  disks?: readonly DiskSpec[]
  /**
   * Warm start (snapshot/): `save` boots a template whose VmProcess can saveSnapshot (its RAM in a
   * file); `restore` starts from the snapshot `file` instead of the kernel (which is then not read).
   */
  snapshot?: { kind: 'save' } | { kind: 'restore'; file: string }
}

export async function launchKvm(plan: KvmPlan, console: ConsoleLog): Promise<VmProcess> {
  const startedAt = performance.now()
  const ms = () => `${(performance.now() - startedAt).toFixed(0)} ms`
  const restoring = plan.snapshot?.kind === 'restore' ? plan.snapshot.file : undefined
  const snap = restoring !== undefined ? readKvmSnapshot(restoring) : undefined
  if (snap && plan.disks?.length) throw new Error('a restored guest cannot have disks')
  // A template's RAM file, in a run folder of its own (removed with the VM; a killed host's is swept).
  const ramDir = plan.snapshot?.kind === 'save' ? createRunDir(ramFolderParent(plan.memoryMib * MiB)) : undefined
  let sys: KvmSystem
  try {
    sys = new KvmSystem()
  } catch (e) {
    if (ramDir) removeRunDir(ramDir)
    throw e
  }
  let vm: KvmVm
  try {
    vm = sys.createVm()
  } catch (e) {
    sys.close()
    if (ramDir) removeRunDir(ramDir)
    throw e
  }
  let ram: HostRam | undefined
  let disks: KvmDisks | undefined
  const threads: VcpuThread[] = []
  try {
    vm.setupInterruptControllers()
    const layout = x86MemoryLayout(plan.memoryMib * MiB)
    if (snap && snap.memBytes !== layout.memBytes) throw new Error(`the snapshot's guest has ${snap.memBytes} bytes of RAM, this one ${layout.memBytes}`)
    ram = mapGuestRam(
      vm,
      layout,
      ramDir ? { kind: 'shared-file', path: path.join(ramDir, 'ram') } : restoring ? { kind: 'snapshot', path: partPath(restoring, RAM_PART) } : undefined,
    )
    const mem = ram.memory
    const io = new Bus('io')
    const mmio = new Bus('mmio')
    const legacy = attachLegacyDevices(io, { irqLine: (irq, level) => vm.irqLine(irq, level), console })
    const { channel, cmdline: consoleParam, transport: consoleTransport } = attachConsole(mmio, vm, mem)
    disks = attachDisks(plan.disks ?? [], { vm, ram: mem, mmio })
    let entry: EntryState | undefined
    if (snap) {
      legacy.loadState(snap.legacy)
      consoleTransport.loadState(snap.console)
      loadVmState(vm.fd, snap.vm)
    } else {
      const rsdpAddress = writeAcpiTables(mem, buildAcpiTables(plan.topology, layout))
      // The console's window first, then the disks': Linux probes them in this order.
      entry = loadKernel(plan, mem, layout, rsdpAddress, [consoleParam, ...disks.cmdline])
      log.debug(`kvm: kernel loaded at ${ms()}`)
    }
    const errors: string[] = []
    const onAccess = (a: Parameters<Bus['access']>[0]) => (a.kind === 'io' ? io : mmio).access(a)
    const withholdPv = withheldPvFeatures(process.env.KTSTR_KVM_WITHHOLD_PV)
    // KVM_CAP_XSAVE2 answers the XSAVE area's size (0 on a KVM without it: the legacy 4 KiB).
    const xsaveSize = Math.max(XSAVE_LEGACY_SIZE, vm.checkExtension(KVM_CAP.XSAVE2))
    const save = ramDir ? { msrIndices: sys.msrIndexList(), xsaveSize } : undefined
    await createVcpus(
      {
        sys,
        vm,
        topology: plan.topology,
        ...(entry ? { entry } : {}),
        ...(snap ? { restore: snap.vcpus, xsaveSize } : {}),
        ...(save ? { save } : {}),
        withholdPv,
        mem,
        onAccess,
        onError: (m) => errors.push(m),
      },
      threads,
    )
    log.debug(`kvm: ${threads.length} vCPU threads ready at ${ms()}${snap ? ' (restored)' : ''}`)
    const stopReports = startVcpus(threads)

    // The first vCPU to stop decides the outcome; the others are kicked out.
    const exited: Promise<VmExit> = Promise.race(threads.map((th) => th.exited)).then(async (first) => {
      stopReports()
      for (const th of threads) th.kick()
      const all = await Promise.all(threads.map((th) => th.exited))
      // The blk threads write into guest RAM: they stop (syncing their backings) before it goes.
      await disks?.close()
      legacy.flush()
      console.close()
      channel.vmGone()
      teardown(vm, sys, ram, disks)
      if (ramDir) removeRunDir(ramDir)
      return describeExit(first, all, errors)
    })
    const saveSnapshot = async (file: string): Promise<string[]> => {
      // Every vCPU out of KVM_RUN before any state is read: none can then change another's.
      await Promise.all(threads.map((th) => th.pause(SNAPSHOT_STEP_MS)))
      const vcpus: VcpuState[] = []
      for (const th of threads) vcpus.push(await th.saveState(SNAPSHOT_STEP_MS))
      writeKvmSnapshot(file, { memBytes: layout.memBytes, vcpus, vm: saveVmState(vm.fd), legacy: legacy.saveState(), console: consoleTransport.saveState() })
      const ramPart = partPath(file, RAM_PART)
      try {
        await copySparse(path.join(ramDir!, 'ram'), ramPart)
      } catch (e) {
        // The cache entry removes its main file only: a part cut short (a full disk) goes here.
        fs.rmSync(ramPart, { force: true })
        throw e
      }
      return [ramPart]
    }
    return {
      console,
      channel: Promise.resolve(channel),
      exited,
      startedAt,
      memory: mem,
      vcpuRegisters: () => readVcpuRegisters(threads),
      kill: () => threads.forEach((th) => th.kick()),
      ...(ramDir ? { saveSnapshot } : {}),
    }
  } catch (e) {
    for (const th of threads) th.kick()
    await Promise.all(threads.map((th) => th.exited.catch(() => undefined)))
    await disks?.close()
    teardown(vm, sys, ram, disks)
    if (ramDir) removeRunDir(ramDir)
    throw e
  }
}

/** A snapshot's guest RAM: the part beside its state file. */
export const RAM_PART = 'ram'
/** How long each vCPU gets to pause, and to hand over its state, for a snapshot. */
const SNAPSHOT_STEP_MS = 10_000

/** Guest RAM: mmap'd host memory, one KVM memory slot per RAM range of the layout. */
function mapGuestRam(vm: KvmVm, layout: MemoryLayout, backing?: RamBacking): HostRam {
  const ram = mapHostRam(layout, undefined, backing)
  try {
    ram.slots.forEach((r, slot) => vm.setMemoryRegion(slot, r.base, r.size, r.hostAddress))
  } catch (e) {
    ram.unmap()
    throw e
  }
  return ram
}

/** The kernel, its initrd and command line in guest RAM (Linux boot protocol); vCPU 0's entry state. */
function loadKernel(plan: KvmPlan, mem: GuestMemory, layout: MemoryLayout, rsdpAddress: number, params: readonly string[]): EntryState {
  const cmdline = addKernelParams(plan.cmdline, ['pci=off', ...params])
  const boot = loadLinux(mem, {
    kernel: fs.readFileSync(plan.kernel),
    initrd: fs.readFileSync(plan.initrd),
    cmdline,
    layout,
    rsdpAddress,
    label: plan.kernel,
  })
  log.debug(`kvm: kernel at 0x${boot.kernelLoadAddress.toString(16)}, initrd ${boot.initrd?.size} bytes; cmdline ${cmdline}`)
  return boot.entry
}

/**
 * KVM paravirtual features the guest does not get by default, so it schedules as on hardware:
 * async page faults put the host's paging into the guest's scheduler (tasks parked on "page not
 * present"), steal time makes vcpu_is_preempted() steer idle-CPU choice and takes stolen time out
 * of task clocks (PV TLB flush depends on it), and PV spinlocks halt lock waiters. Nested under
 * QEMU's TCG, leaving them on also hangs sched_ext loads with every vCPU halted (see
 * README.md here, "What the guest is told").
 */
export const DEFAULT_WITHHELD_PV: readonly KvmPvFeature[] = ['async-pf', 'async-pf-int', 'async-pf-vmexit', 'steal-time', 'pv-tlb-flush', 'pv-unhalt']

/** KTSTR_KVM_WITHHOLD_PV=async-pf,pv-eoi,… replaces the default list ('' withholds nothing). */
export function withheldPvFeatures(env: string | undefined): readonly KvmPvFeature[] {
  if (env === undefined) return DEFAULT_WITHHELD_PV
  const names = env
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean)
  const bad = names.filter((n) => !(n in KVM_PV_FEATURE))
  if (bad.length) throw new KtstrError(`KTSTR_KVM_WITHHOLD_PV: unknown feature ${bad.join(', ')}; known: ${Object.keys(KVM_PV_FEATURE).join(', ')}`)
  return names as KvmPvFeature[]
}

/**
 * Closes the VM and /dev/kvm and unmaps guest RAM — once every blk thread is gone: one
 * left stuck in a backing call (disks.close() gave up on it) may still write into guest RAM from
 * the kernel, so its RAM stays mapped until that call returns.
 */
function teardown(vm: { close(): void }, sys: KvmSystem, ram: HostRam | undefined, disks: KvmDisks | undefined): void {
  vm.close()
  sys.close()
  if (!disks?.liveThreads()) return ram?.unmap()
  log.warn('kvm: guest RAM stays mapped until the stuck virtio-blk thread returns')
  void disks.gone().then(() => ram?.unmap())
}

function describeExit(first: VcpuExit, all: VcpuExit[], errors: string[]): VmExit {
  const exits = all.reduce((n, e) => n + e.exits, 0)
  log.debug(`kvm: vCPUs stopped after ${exits} exits to userspace (first: reason ${first.reason}, detail ${first.detail})`)
  switch (first.reason) {
    case TerminalReason.PowerOff:
    case TerminalReason.Reset:
      return { code: 0, signal: null, stderr: '' }
    case TerminalReason.Stopped:
      return { code: null, signal: 'SIGKILL', stderr: 'the VM was stopped' }
    case TerminalReason.Shutdown:
      return { code: 1, signal: null, stderr: 'the guest triple-faulted (KVM_EXIT_SHUTDOWN)' }
    default:
      return { code: 1, signal: null, stderr: [`KVM stopped the guest (exit reason ${first.detail})`, ...errors].join('; ') }
  }
}
