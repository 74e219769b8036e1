/**
 * The VM's vCPUs, one thread each (thread.ts), created in order as KVM wants: ids are the
 * topology's APIC ids, CPUID is patched for the topology and the withheld PV features, vCPU 0
 * starts at the kernel entry and the rest wait for SIPI. With KTSTR_LOG=debug every vCPU reports
 * its exits and RIP every REPORT_EVERY_MS (to see where a stuck guest is).
 */
import { KVM_CAP } from '../../../../native-shims/kvm/abi.js'
import { interruptSignal } from '../../../../native-shims/libc.js'
import { cpuCount, type TopologySpec as Topology } from '../../../../runtime/protocol/topology.js'
import { log } from '../../../util/log.js'
import type { GuestMemory } from '../../memory/guest-memory.js'
import { bootMsrs, type EntryState } from '../arch/x86_64/boot/cpu-state.js'
import { advertisedXcr0, cpuidForVcpu, type KvmPvFeature } from '../arch/x86_64/cpuid.js'
import { stackWords } from '../arch/x86_64/guest-stack.js'
import { apicId } from '../arch/x86_64/topology-ids.js'
import { encodeCpuid, type KvmSystem, type KvmVm } from '../system.js'
import type { CpuState, VcpuReport } from './protocol.js'
import { type VcpuState, XSAVE_LEGACY_SIZE } from './state.js'
import { type AccessResult, type DeviceAccess, VcpuThread } from './thread.js'

const REPORT_EVERY_MS = 20_000

export interface VcpuSetup {
  readonly sys: KvmSystem
  readonly vm: KvmVm
  readonly topology: Topology
  /** vCPU 0's 64-bit entry state (boot/loader.ts), for a boot. */
  readonly entry?: EntryState
  /** A restore: each vCPU's saved state, in vCPU order (replaces the boot state). */
  readonly restore?: readonly VcpuState[]
  /** With restore: this KVM's XSAVE area size, which the saved ones must have. */
  readonly xsaveSize?: number
  /** A template guest: what its vCPUs' saved state covers. */
  readonly save?: { readonly msrIndices: number[]; readonly xsaveSize: number }
  readonly withholdPv: readonly KvmPvFeature[]
  /** Guest RAM, for the debug report's stack walk. */
  readonly mem: GuestMemory
  readonly onAccess: (a: DeviceAccess) => AccessResult
  readonly onError: (message: string) => void
}

/** kvm_regs / kvm_sregs values as the dotted paths the vCPU thread patches. */
function cpuStateOf(entry: EntryState): CpuState {
  const sregs: Record<string, number> = {}
  for (const [k, v] of Object.entries(entry.sregs)) {
    if (typeof v === 'number') sregs[k] = v
    else for (const [f, n] of Object.entries(v)) sregs[`${k}.${f}`] = n as number
  }
  return { regs: { ...entry.regs }, sregs }
}

/**
 * Creates every vCPU, pushing each onto `threads` as it comes (so a failure leaves the caller
 * the ones to stop), and resolves once all are ready to run (VcpuThread.start).
 */
export async function createVcpus(s: VcpuSetup, threads: VcpuThread[]): Promise<void> {
  const t = s.topology
  const supported = s.sys.supportedCpuid()
  const tscDeadline = s.sys.checkExtension(KVM_CAP.TSC_DEADLINE_TIMER!) > 0
  const runMmapSize = s.sys.vcpuMmapSize()
  const kickSignal = interruptSignal()
  let deviceMs = 0
  const onAccess = !log.isDebug
    ? s.onAccess
    : (a: DeviceAccess) => {
        const t0 = performance.now()
        const r = s.onAccess(a)
        deviceMs += performance.now() - t0
        return r
      }
  if (s.restore && s.restore.length !== cpuCount(t)) throw new Error(`the snapshot has ${s.restore.length} vCPUs, the topology ${cpuCount(t)}`)
  for (let cpu = 0; cpu < cpuCount(t); cpu++) {
    const cpuid = cpuidForVcpu(supported, t, cpu, { tscDeadline, withholdPv: s.withholdPv })
    const xcr0 = advertisedXcr0(cpuid)
    threads.push(
      new VcpuThread({
        vmFd: s.vm.fd,
        id: apicId(t, cpu),
        runMmapSize,
        cpuid: encodeCpuid(cpuid),
        ...(xcr0 !== undefined ? { xcr0 } : {}),
        msrs: bootMsrs(),
        ...(cpu === 0 && s.entry ? { boot: cpuStateOf(s.entry) } : {}),
        ...(s.restore ? { restore: { state: s.restore[cpu]!, xsaveSize: s.xsaveSize ?? XSAVE_LEGACY_SIZE } } : {}),
        ...(s.save ? { save: s.save } : {}),
        kickSignal,
        onAccess,
        onError: s.onError,
        ...(log.isDebug ? { onReport: (r: VcpuReport) => report(s.mem, cpu, r, deviceMs) } : {}),
      }),
    )
    // KVM wants vCPUs created in order; each thread creates its own.
    await threads.at(-1)!.ready
  }
}

/** Lets every vCPU enter KVM_RUN; returns the stop of the debug reports. */
export function startVcpus(threads: readonly VcpuThread[]): () => void {
  for (const th of threads) th.start()
  if (!log.isDebug) return () => {}
  const reporter = setInterval(() => threads.forEach((th) => th.requestReport()), REPORT_EVERY_MS)
  reporter.unref()
  return () => clearInterval(reporter)
}

function report(mem: GuestMemory, cpu: number, r: VcpuReport, deviceMs: number): void {
  const s = r.stats
  const top = Object.entries(s.counts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, n]) => `${k}=${n}`)
    .join(' ')
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
    log.debug(
      `kvm: vCPU ${cpu} stack (kernel text words): ${words
        .filter((w) => w >= KERNEL_TEXT)
        .map((w) => w.toString(16))
        .join(' ')}`,
    )
  }
}
