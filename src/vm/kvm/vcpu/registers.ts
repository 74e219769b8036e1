/** VmProcess.vcpuRegisters for the kvm VMM: one report per vCPU thread, each waited for at most a bound. */
import type { VcpuRegisters } from '../../vm-process.js'
import type { VcpuReport } from './protocol.js'

/** How long a vCPU thread gets to answer (it answers within a KVM_RUN exit: microseconds). */
export const REGISTERS_WAIT_MS = 200

/** What readVcpuRegisters needs of a vCPU thread (thread.ts VcpuThread). */
export interface ReportingVcpu {
  report(timeoutMs: number): Promise<VcpuReport | undefined>
}

export async function readVcpuRegisters(threads: readonly ReportingVcpu[], timeoutMs = REGISTERS_WAIT_MS): Promise<VcpuRegisters[]> {
  const reports = await Promise.all(threads.map((th) => th.report(timeoutMs)))
  return reports.map((r, cpu) => registersOf(cpu, r, timeoutMs))
}

export function registersOf(cpu: number, r: VcpuReport | undefined, timeoutMs = REGISTERS_WAIT_MS): VcpuRegisters {
  if (!r) return { cpu, noAnswer: `the vCPU thread did not answer within ${timeoutMs} ms` }
  if (r.rip === undefined) return { cpu, noAnswer: 'KVM did not give the registers' }
  const regs: Record<string, string> = {}
  for (const [k, v] of Object.entries({ rip: r.rip, rsp: r.rsp, rflags: r.rflags, cr3: r.cr3, cr4: r.cr4, ...r.gprs })) {
    if (v !== undefined) regs[k] = `0x${v}`
  }
  return { cpu, regs }
}
