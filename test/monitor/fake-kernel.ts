/**
 * A guest kernel in miniature for the monitor's unit tests: a BTF with the structs and per-CPU
 * variables the monitor reads (laid out like Linux 6.12's, at other offsets), and a GuestMemory
 * with per-CPU areas, run queues and tasks written where that BTF says.
 */
import { Btf } from '../../src/monitor/btf/index.js'
import { PAGE_OFFSET_4LEVEL, PAGE_OFFSET_5LEVEL } from '../../src/monitor/paging.js'
import { GuestMemory } from '../../src/vm/memory/guest-memory.js'
import { BtfBuilder } from './btf-blob.js'

export const MiB = 2 ** 20
export const OFF = { thisCpuOff: 0x5220, pcpuHot: 0x100, runqueues: 0x1000 }
/** Byte offsets inside the structs below. */
export const RQ = { nrRunning: 0, clock: 8, curr: 16, scx: 64, localDsqNr: 64 + 16, runnableList: 64 + 64, scxNrRunning: 64 + 80 }
export const TASK = { pid: 0, policy: 4, comm: 8, runnableNode: 32, runnableAt: 48, activeMm: 64 }

export interface KernelBtfOptions {
  /** Leave rq.scx.local_dsq.nr out (a kernel the monitor does not fit). */
  noLocalDsq?: boolean
  /** Add struct scx_event_stats (a 6.15+ kernel). */
  events?: boolean
}

export function kernelBtf(o: KernelBtfOptions = {}): Btf {
  return Btf.parse(kernelBtfBlob(o))
}

/** The raw BTF blob kernelBtf parses (what a kernel's .BTF section holds). */
export function kernelBtfBlob(o: KernelBtfOptions = {}): Uint8Array {
  const b = new BtfBuilder()
  const u32 = b.int('unsigned int', 4)
  const int = b.int('int', 4, 32, true)
  const u64 = b.int('long long unsigned int', 8)
  const ulong = b.int('long unsigned int', 8)
  const char = b.int('char', 1)
  const vptr = b.add('PTR', '', 0)
  const comm = b.add('ARRAY', '', char, { extra: [char, u32, 16] })
  const list = b.struct('list_head', 16, [
    ['next', vptr, 0],
    ['prev', vptr, 64],
  ])
  const hot = b.struct('pcpu_hot', 64, [
    ['current_task', vptr, 0],
    ['cpu_number', int, 96],
  ])
  const dsq = b.struct('scx_dispatch_q', 64, o.noLocalDsq ? [] : [['nr', u32, 16 * 8]])
  const scxRq = b.struct('scx_rq', 96, [
    ['local_dsq', dsq, 0],
    ['runnable_list', list, 64 * 8],
    ['nr_running', u32, 80 * 8],
  ])
  const rq = b.struct('rq', 256, [
    ['nr_running', u32, 0],
    ['clock', u64, 64],
    ['curr', vptr, 128],
    ['scx', scxRq, 64 * 8],
  ])
  const see = b.struct('sched_ext_entity', 32, [
    ['runnable_node', list, 0],
    ['runnable_at', ulong, 128],
  ])
  b.struct('task_struct', 128, [
    ['pid', int, 0],
    ['policy', u32, 32],
    ['comm', comm, 64],
    ['scx', see, 32 * 8],
    ['active_mm', vptr, 64 * 8],
  ])
  b.struct('mm_struct', 64, [['pgd', vptr, 64]])
  if (o.events) b.struct('scx_event_stats', 8, [['SCX_EV_SELECT_CPU_FALLBACK', u64, 0]])
  const vOff = b.add('VAR', 'this_cpu_off', ulong, { extra: [0] })
  const vHot = b.add('VAR', 'pcpu_hot', hot, { extra: [0] })
  const vRq = b.add('VAR', 'runqueues', rq, { extra: [0] })
  b.add('DATASEC', '.data..percpu', 0x6000, { vlen: 3, extra: [vHot, OFF.pcpuHot, 64, vRq, OFF.runqueues, 256, vOff, OFF.thisCpuOff, 8] })
  return b.blob()
}

export interface FakeTask {
  pid: number
  comm: string
  policy?: number
  runnableAt?: number
}

/** Guest RAM with `cpus` per-CPU areas (at 8 MiB + 1 MiB per CPU) and a bump allocator for kernel objects. */
export function fakeGuest(opts: { cpus: number; la57?: boolean; regions?: { base: number; size: number }[]; areaAt?: (cpu: number) => number }) {
  const mem = GuestMemory.allocate(opts.regions ?? [{ base: 0, size: 64 * MiB }])
  const pageOffset = opts.la57 ? PAGE_OFFSET_5LEVEL : PAGE_OFFSET_4LEVEL
  const va = (pa: number) => pageOffset + BigInt(pa)
  const areas: number[] = []
  for (let cpu = 0; cpu < opts.cpus; cpu++) {
    const pa = opts.areaAt?.(cpu) ?? 8 * MiB + cpu * MiB
    areas.push(pa)
    mem.writeU64(pa + OFF.thisCpuOff, va(pa))
    mem.writeU32(pa + OFF.pcpuHot + 12, cpu)
  }
  let next = 32 * MiB
  const alloc = (size: number) => {
    const at = next
    next += Math.ceil(size / 4096) * 4096
    return at
  }
  const rqOf = (cpu: number) => areas[cpu]! + OFF.runqueues
  /** An empty runnable list on every CPU (list_head pointing at itself). */
  for (let cpu = 0; cpu < opts.cpus; cpu++) {
    const head = rqOf(cpu) + RQ.runnableList
    mem.writeU64(head, va(head))
    mem.writeU64(head + 8, va(head))
  }
  const task = (t: FakeTask): number => {
    const pa = alloc(128)
    mem.writeU32(pa + TASK.pid, t.pid)
    mem.writeU32(pa + TASK.policy, t.policy ?? 7)
    mem.write(pa + TASK.comm, Buffer.from(`${t.comm}\0`))
    mem.writeU64(pa + TASK.runnableAt, BigInt(t.runnableAt ?? 0))
    return pa
  }
  /** Sets a CPU's run queue: counts, clock, current task and the runnable list (in order, oldest first). */
  const setRq = (cpu: number, r: { nr: number; scxNr?: number; dsq?: number; clock: number; curr?: number; runnable?: number[] }) => {
    const rq = rqOf(cpu)
    mem.writeU32(rq + RQ.nrRunning, r.nr)
    mem.writeU32(rq + RQ.scxNrRunning, r.scxNr ?? 0)
    mem.writeU32(rq + RQ.localDsqNr, r.dsq ?? 0)
    mem.writeU64(rq + RQ.clock, BigInt(r.clock))
    mem.writeU64(rq + RQ.curr, r.curr === undefined ? 0n : va(r.curr))
    const head = rq + RQ.runnableList
    const nodes = (r.runnable ?? []).map((t) => t + TASK.runnableNode)
    const ring = [head, ...nodes]
    ring.forEach((n, i) => {
      mem.writeU64(n, va(ring[(i + 1) % ring.length]!))
      mem.writeU64(n + 8, va(ring[(i - 1 + ring.length) % ring.length]!))
    })
  }
  return { mem, areas, va, alloc, task, setRq, rqOf, pageOffset }
}
