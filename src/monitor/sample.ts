/**
 * One CPU's scheduler state, read by the host from guest RAM while the guest runs: run-queue
 * counts, the rq clock, the current task and the oldest tasks on sched_ext's runnable list. The
 * guest changes these under us, so every read is a copy, list walks are bounded, and a torn
 * pointer ends the walk with a partial sample; nothing here throws.
 */
import { GuestMemoryError } from '../vm/memory/guest-memory.js'
import type { Layout } from './layout.js'
import type { GuestKernelView } from './open-view.js'

export interface TaskRef {
  pid: number
  comm: string
  /** SCHED_NORMAL 0, FIFO 1, RR 2, BATCH 3, IDLE 5, DEADLINE 6, EXT 7. */
  policy: number
}

export interface RunnableTask extends TaskRef {
  /** `p->scx.runnable_at`: jiffies when the task last became runnable after running. */
  runnableAt: number
  /** Physical address of its task_struct: the task's identity while it lives. */
  addr: number
}

export interface CpuSample {
  cpu: number
  /** rq->nr_running: tasks of every class. */
  nrRunning: number
  /** rq->scx.nr_running: sched_ext tasks. */
  scxNrRunning: number
  /** rq->scx.local_dsq.nr: depth of the CPU's local dispatch queue. */
  localDsq: number
  /** rq->clock, ns. */
  clockNs: number
  curr: TaskRef | undefined
  /** The oldest entries of rq->scx.runnable_list (runnable sched_ext tasks not running), oldest first. */
  runnable: RunnableTask[]
  /** What could not be read (a torn pointer, RAM gone); absent for a whole sample. */
  partial?: string
}

/** Runnable-list entries kept per sample (the oldest: a stalled task stays at the head). */
export const RUNNABLE_KEEP = 8

const TWO32 = 2 ** 32
const commBuf = new Uint8Array(64)

export function sampleCpu(view: GuestKernelView, layout: Layout, cpu: number): CpuSample {
  const s: CpuSample = { cpu, nrRunning: 0, scxNrRunning: 0, localDsq: 0, clockNs: 0, curr: undefined, runnable: [] }
  const mem = view.mem
  try {
    const rq = view.percpuPa(cpu) + layout.runqueues
    s.nrRunning = mem.readU32(rq + layout.rq.nrRunning)
    s.scxNrRunning = mem.readU32(rq + layout.rq.scxNrRunning)
    s.localDsq = mem.readU32(rq + layout.rq.localDsqNr)
    s.clockNs = mem.readU32(rq + layout.rq.clock + 4) * TWO32 + mem.readU32(rq + layout.rq.clock)
    const curr = view.readPointerPa(rq + layout.rq.curr)
    if (curr < 0) s.partial = 'rq->curr is not a kernel pointer'
    else s.curr = readTask(view, layout, curr)
    walkRunnable(view, layout, rq + layout.rq.runnableList, s)
  } catch (e) {
    if (!(e instanceof GuestMemoryError)) throw e
    s.partial = view.mem.isReleased ? 'the VM is gone' : `read outside guest RAM (${e.message})`
  }
  return s
}

function readTask(view: GuestKernelView, layout: Layout, pa: number): TaskRef {
  const mem = view.mem
  const n = Math.min(layout.task.commLen, commBuf.length)
  const buf = commBuf.subarray(0, n)
  mem.read(pa + layout.task.comm, buf)
  let comm = ''
  for (let i = 0; i < n && buf[i] !== 0; i++) comm += String.fromCharCode(buf[i]!)
  return { pid: mem.readU32(pa + layout.task.pid) | 0, comm, policy: mem.readU32(pa + layout.task.policy) }
}

/** Follow list_head.next from the head until back at it, RUNNABLE_KEEP entries at most. */
function walkRunnable(view: GuestKernelView, layout: Layout, head: number, s: CpuSample): void {
  let node = view.readPointerPa(head)
  for (let i = 0; i < RUNNABLE_KEEP && node !== head; i++) {
    if (node < 0) {
      s.partial = 'the runnable list changed under the read (torn pointer)'
      return
    }
    const task = node - layout.task.runnableNode
    const t = readTask(view, layout, task)
    const at = task + layout.task.runnableAt
    s.runnable.push({ ...t, runnableAt: view.mem.readU32(at + 4) * TWO32 + view.mem.readU32(at), addr: task })
    node = view.readPointerPa(node)
  }
}
