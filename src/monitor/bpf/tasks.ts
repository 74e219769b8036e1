/**
 * Every process of the guest, found without symbol addresses: CPU 0's idle task (`runqueues.idle`
 * of CPU 0) is init_task (swapper/0), whose `tasks` list links every thread-group leader; a
 * leader's threads hang on `signal->thread_head` through their `thread_node`. The walk is bounded
 * and tolerates a list changing under it: an unreadable or looping link ends it with what was read.
 */
import type { KernelView } from '../kernel-view.js'
import { cstr, f32, f64, isKernelPtr, off } from './kmem.js'

export interface GuestTask {
  /** The task_struct's address. */
  addr: bigint
  pid: number
  tgid: number
  comm: string
  /** task->files (0n for a kernel thread). */
  files: bigint
}

export interface TaskWalkOptions {
  /** Stop after this many tasks (default 65,536). */
  max?: number
  /** Also walk each process's threads (default false: threads share their leader's fd table). */
  threads?: boolean
}

/** init_task, as CPU 0's idle task. */
export function initTask(view: KernelView): bigint | undefined {
  const rq = view.percpuAddress('runqueues', 0)
  const idle = f64(view, rq, 'rq', 'idle')
  return isKernelPtr(idle) ? idle : undefined
}

export function readTask(view: KernelView, addr: bigint): GuestTask | undefined {
  const pid = f32(view, addr, 'task_struct', 'pid')
  const tgid = f32(view, addr, 'task_struct', 'tgid')
  const comm = cstr(view, addr + BigInt(off(view.btf, 'task_struct', 'comm')), 16)
  const files = f64(view, addr, 'task_struct', 'files')
  if (pid === undefined || tgid === undefined || comm === undefined || files === undefined) return undefined
  return { addr, pid, tgid, comm, files }
}

/** The tasks in the list whose head is at `head`, entries linked through `struct task_struct.<member>`. */
function* listTasks(view: KernelView, head: bigint, member: string, budget: { left: number }): Generator<bigint> {
  const link = BigInt(off(view.btf, 'task_struct', member))
  const seen = new Set<bigint>()
  let node = f64(view, head, 'list_head', 'next')
  while (isKernelPtr(node) && node !== head && budget.left > 0 && !seen.has(node)) {
    seen.add(node)
    budget.left--
    yield node - link
    node = f64(view, node, 'list_head', 'next')
  }
}

/** init_task then every process on its `tasks` list (and their threads when asked). */
export function* walkTasks(view: KernelView, opts: TaskWalkOptions = {}): Generator<GuestTask> {
  const init = initTask(view)
  if (init === undefined) return
  const budget = { left: opts.max ?? 65_536 }
  const first = readTask(view, init)
  if (!first) return
  yield first
  for (const addr of listTasks(view, init + BigInt(off(view.btf, 'task_struct', 'tasks')), 'tasks', budget)) {
    const t = readTask(view, addr)
    if (!t) return
    yield t
    if (!opts.threads) continue
    const signal = f64(view, addr, 'task_struct', 'signal')
    if (!isKernelPtr(signal)) continue
    for (const th of listTasks(view, signal + BigInt(off(view.btf, 'signal_struct', 'thread_head')), 'thread_node', budget)) {
      const tt = th === addr ? undefined : readTask(view, th)
      if (tt) yield tt
    }
  }
}
