/**
 * The kvm backend: our own VMM on /dev/kvm. Guest RAM is mmap'd memory registered with KVM, one
 * worker thread per vCPU runs KVM_RUN, and the devices (UART console, ACPI power-off, the
 * virtio-console channel, the virtio-blk disks' registers) answer trapped accesses on the main
 * thread; each disk's requests are served by its blk worker thread (disks.ts).
 */
import fs from 'node:fs'
import { KVM_CAP } from '../../../native-shims/kvm/abi.js'
import { interruptSignal } from '../../../native-shims/libc.js'
import { cpuCount, type Topology } from '../../topology/topology.js'
import { KtstrError } from '../../util/errors.js'
import { log } from '../../util/log.js'
import type { ConsoleLog } from '../console.js'
import type { DiskSpec } from '../disk.js'
import type { VmExit, VmProcess } from '../vm-process.js'
import { buildAcpiTables, writeAcpiTables } from './acpi/tables.js'
import { addKernelParams } from './boot/cmdline.js'
import { bootMsrs, type EntryState } from './boot/cpu-state.js'
import { loadLinux } from './boot/loader.js'
import { ChannelStream } from './channel-stream.js'
import { advertisedXcr0, cpuidForVcpu, KVM_PV_FEATURE, type KvmPvFeature } from './cpuid.js'
import { AcpiPm, ACPI_PM_PORTS } from './devices/acpi-pm.js'
import { Serial8250 } from './devices/serial.js'
import { VirtioConsole } from './devices/virtio-console.js'
import { VirtioMmioTransport, virtioMmioCmdline } from './devices/virtio-mmio.js'
import { attachDisks, type KvmDisks } from './disks.js'
import { Bus } from './io-bus.js'
import { stackWords } from './guest-stack.js'
import { mapHostRam, type HostRam } from './memory/host-ram.js'
import { MiB, virtioMmioWindow, x86MemoryLayout } from './memory/layout.js'
import { COM1, I8042_COMMAND_PORT, I8042_RESET_CPU, UART_PORT_COUNT } from './platform.js'
import { encodeCpuid, KvmSystem, type KvmVm } from './system.js'
import { apicId } from './topology-ids.js'
import { TerminalReason, type CpuState, type VcpuReport } from './vcpu/protocol.js'
import { VcpuThread, type AccessResult, type DeviceAccess, type VcpuExit } from './vcpu/thread.js'

const REPORT_EVERY_MS = 20_000

export interface KvmPlan {
  kernel: string
  initrd: string
  cmdline: string
  topology: Topology
  memoryMib: number
  /** virtio-blk disks, in order: /dev/vda, /dev/vdb, … */
  disks?: readonly DiskSpec[]
}

/** kvm_regs / kvm_sregs values as the dotted paths the vCPU worker patches. */
export function cpuStateOf(entry: EntryState): CpuState {
  const sregs: Record<string, number> = {}
  for (const [k, v] of Object.entries(entry.sregs)) {
    if (typeof v === 'number') sregs[k] = v
    else for (const [f, n] of Object.entries(v)) sregs[`${k}.${f}`] = n as number
  }
  return { regs: { ...entry.regs }, sregs }
}

export async function launchKvm(plan: KvmPlan, console: ConsoleLog): Promise<VmProcess> {
  const startedAt = performance.now()
  const sys = new KvmSystem()
  let vm: KvmVm
  try {
    vm = sys.createVm()
  } catch (e) {
    sys.close()
    throw e
  }
  const t = plan.topology
  let ram: HostRam | undefined
  const threads: VcpuThread[] = []
  let disks: KvmDisks | undefined
  let serialBuf: number[] = []
  const flushSerial = () => {
    if (serialBuf.length) console.push(Buffer.from(serialBuf))
    serialBuf = []
  }

  try {
    vm.setupInterruptControllers()
    const layout = x86MemoryLayout(plan.memoryMib * MiB)
    ram = mapHostRam(layout)
    ram.slots.forEach((r, slot) => vm.setMemoryRegion(slot, r.base, r.size, r.hostAddress))
    const mem = ram.memory

    // Devices.
    const io = new Bus('io')
    const mmio = new Bus('mmio')
    let stopReason: 'power-off' | 'reset' | undefined
    const serial = new Serial8250({
      onOutput: (b) => {
        serialBuf.push(b)
        if (b === 10 || serialBuf.length > 4096) flushSerial()
      },
      onInterrupt: (level) => vm.irqLine(COM1.irq, level ? 1 : 0),
    })
    io.add('com1', COM1.port, UART_PORT_COUNT, {
      read: (off) => serial.read(off),
      write: (off, _size, v) => serial.write(off, Number(v)),
    })
    const pm = new AcpiPm({ onPowerOff: () => (stopReason = 'power-off'), onReset: () => (stopReason = 'reset') })
    for (const r of ACPI_PM_PORTS) {
      io.add(`acpi-pm@${r.base.toString(16)}`, r.base, r.length, {
        read: (off, size) => pm.read(r.base + off, size as 1 | 2 | 4),
        write: (off, size, v) => {
          pm.write(r.base + off, size as 1 | 2 | 4, Number(v))
          return stopReason
        },
      })
    }
    // `reboot=k` resets through the keyboard controller; its status reads as idle (0).
    io.add('i8042', I8042_COMMAND_PORT, 1, {
      read: () => 0,
      write: (_off, _size, v) => (Number(v) === I8042_RESET_CPU ? 'reset' : undefined),
    })

    const channel = new ChannelStream((bytes, queued) => consoleDev.send(bytes, queued))
    const consoleDev = new VirtioConsole({ ram: mem, onData: (b) => channel.fromGuest(b) })
    const win = virtioMmioWindow(0)
    const transport = new VirtioMmioTransport(consoleDev, { onInterrupt: () => vm.pulseIrq(win.irq) })
    mmio.add('virtio-console', win.base, win.size, {
      read: (off, size) => transport.read(off, size),
      write: (off, size, v) => transport.write(off, size, Number(v)),
    })

    disks = attachDisks(plan.disks ?? [], { vm, ram: mem, mmio })

    // Firmware tables, kernel, initrd.
    const acpi = buildAcpiTables(t, layout)
    writeAcpiTables(mem, acpi)
    // The console's window first, then the disks': Linux probes them in this order.
    const cmdline = addKernelParams(plan.cmdline, ['pci=off', virtioMmioCmdline(win), ...disks.cmdline])
    const boot = loadLinux(mem, {
      kernel: fs.readFileSync(plan.kernel),
      initrd: fs.readFileSync(plan.initrd),
      cmdline,
      layout,
      rsdpAddress: acpi.rsdpAddress,
      label: plan.kernel,
    })
    const ms = () => `${(performance.now() - startedAt).toFixed(0)} ms`
    log.debug(`kvm: kernel at 0x${boot.kernelLoadAddress.toString(16)}, initrd ${boot.initrd?.size} bytes, loaded at ${ms()}; cmdline ${cmdline}`)

    // vCPUs: ids are the topology's APIC ids; vCPU 0 starts at the kernel entry, the rest wait for SIPI.
    const supported = sys.supportedCpuid()
    const withholdPv = withheldPvFeatures(process.env.KTSTR_KVM_WITHHOLD_PV)
    const tscDeadline = sys.checkExtension(KVM_CAP.TSC_DEADLINE_TIMER!) > 0
    const runMmapSize = sys.vcpuMmapSize()
    const kickSignal = interruptSignal()
    const errors: string[] = []
    // KTSTR_LOG=debug: exit statistics, and every REPORT_EVERY_MS each vCPU's RIP (to see where a stuck guest is).
    let deviceMs = 0
    const onAccess = (a: DeviceAccess): AccessResult => {
      if (!log.isDebug) return a.kind === 'io' ? io.access(a) : mmio.access(a)
      const t0 = performance.now()
      const r = a.kind === 'io' ? io.access(a) : mmio.access(a)
      deviceMs += performance.now() - t0
      return r
    }
    const onReport = log.isDebug
      ? (cpu: number) => (r: VcpuReport) => {
          const s = r.stats
          const top = Object.entries(s.counts).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, n]) => `${k}=${n}`).join(' ')
          const exits = Object.values(s.counts).reduce((a, b) => a + b, 0)
          log.debug(
            `kvm: vCPU ${cpu} at ${(s.elapsedMs / 1000).toFixed(1)} s: rip ${r.rip} rflags ${r.rflags} cr3 ${r.cr3} mp ${r.mpState}; ` +
              `${exits} exits (${top}); in KVM_RUN ${(s.runMs / 1000).toFixed(1)} s; ${s.asks} handed over, ` +
              `${s.asks ? ((s.askMs * 1000) / s.asks).toFixed(0) : 0} µs each (devices ${deviceMs.toFixed(0)} ms total); ${r.lapic}`,
          )
          if (r.rsp && r.cr3 && r.cr4) {
            const LA57 = 1n << 12n
            const words = stackWords(mem, BigInt(`0x${r.cr3}`), (BigInt(`0x${r.cr4}`) & LA57) !== 0n, BigInt(`0x${r.rsp}`), 256)
            const KERNEL_TEXT = 0xffff_ffff_8000_0000n
            log.debug(`kvm: vCPU ${cpu} stack (kernel text words): ${words.filter((w) => w >= KERNEL_TEXT).map((w) => w.toString(16)).join(' ')}`)
          }
        }
      : undefined
    for (let cpu = 0; cpu < cpuCount(t); cpu++) {
      const cpuid = cpuidForVcpu(supported, t, cpu, { tscDeadline, withholdPv })
      const xcr0 = advertisedXcr0(cpuid)
      threads.push(
        new VcpuThread({
          vmFd: vm.fd,
          id: apicId(t, cpu),
          runMmapSize,
          cpuid: encodeCpuid(cpuid),
          ...(xcr0 !== undefined ? { xcr0 } : {}),
          msrs: bootMsrs(),
          ...(cpu === 0 ? { boot: cpuStateOf(boot.entry) } : {}),
          kickSignal,
          onAccess,
          onError: (m) => errors.push(m),
          ...(onReport ? { onReport: onReport(cpu) } : {}),
        }),
      )
      // KVM wants vCPUs created in order; each worker creates its own.
      await threads.at(-1)!.ready
    }
    log.debug(`kvm: ${threads.length} vCPU threads ready at ${ms()}`)
    for (const th of threads) th.start()

    const reporter = onReport ? setInterval(() => threads.forEach((th) => th.requestReport()), REPORT_EVERY_MS) : undefined
    reporter?.unref()

    // The first vCPU to stop decides the outcome; the others are kicked out.
    const firstExit = Promise.race(threads.map((th) => th.exited))
    const exited: Promise<VmExit> = firstExit.then(async (first) => {
      clearInterval(reporter)
      for (const th of threads) th.kick()
      const all = await Promise.all(threads.map((th) => th.exited))
      // The blk workers write into guest RAM: they stop (syncing their backings) before it goes.
      await disks?.close()
      flushSerial()
      console.close()
      channel.vmGone()
      teardown(vm, sys, ram, disks)
      return describeExit(first, all, errors)
    })
    return {
      console,
      channel: Promise.resolve(channel),
      exited,
      startedAt,
      kill: () => threads.forEach((th) => th.kick()),
    }
  } catch (e) {
    for (const th of threads) th.kick()
    await Promise.all(threads.map((th) => th.exited.catch(() => undefined)))
    await disks?.close()
    teardown(vm, sys, ram, disks)
    throw e
  }
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
  const names = env.split(',').map((n) => n.trim()).filter(Boolean)
  const bad = names.filter((n) => !(n in KVM_PV_FEATURE))
  if (bad.length) throw new KtstrError(`KTSTR_KVM_WITHHOLD_PV: unknown feature ${bad.join(', ')}; known: ${Object.keys(KVM_PV_FEATURE).join(', ')}`)
  return names as KvmPvFeature[]
}

/**
 * Closes the VM and /dev/kvm and unmaps guest RAM — once every blk worker thread is gone: one
 * left stuck in a backing call (disks.close() gave up on it) may still write into guest RAM from
 * the kernel, so its RAM stays mapped until that call returns.
 */
function teardown(vm: { close(): void }, sys: KvmSystem, ram: HostRam | undefined, disks: KvmDisks | undefined): void {
  vm.close()
  sys.close()
  if (!disks?.liveThreads()) return ram?.unmap()
  log.warn('kvm: guest RAM stays mapped until the stuck virtio-blk worker thread returns')
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
