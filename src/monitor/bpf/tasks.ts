/**
 * Every process of the guest, found without symbol addresses: CPU 0's idle task (`runqueues.idle`
 * of CPU 0) is init_task (swapper/0), whose `tasks` list links every thread-group leader; a
 * leader's threads hang on `signal->thread_head` through their `thread_node`. The walk is bounded
 * and tolerates a list changing under it: an unreadable or looping link ends it with what was read,
 * and `ended.complete` says whether every list was followed back to its head (the host reads the
 * lists without the guest's RCU: a task freed and reused during the walk tears it).
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
  /** Set when the walk ends: complete unless a list was cut short (torn, looping or over budget). */
  ended?: { complete: boolean }
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
function* listTasks(view: KernelView, head: bigint, member: string, walk: Walk): Generator<bigint> {
  const link = BigInt(off(view.btf, 'task_struct', member))
  const seen = new Set<bigint>()
  let node = f64(view, head, 'list_head', 'next')
  while (isKernelPtr(node) && node !== head && walk.left > 0 && !seen.has(node)) {
    seen.add(node)
    walk.left--
    yield node - link
    node = f64(view, node, 'list_head', 'next')
  }
  if (node !== head) walk.complete = false
}

interface Walk {
  /** Tasks still allowed. */
  left: number
  complete: boolean
}

/** init_task then every process on its `tasks` list (and their threads when asked). */
export function* walkTasks(view: KernelView, opts: TaskWalkOptions = {}): Generator<GuestTask> {
  const walk: Walk = { left: opts.max ?? 65_536, complete: false }
  try {
    yield* walkFrom(view, opts, walk)
  } finally {
    if (opts.ended) opts.ended.complete = walk.complete
  }
}

function* walkFrom(view: KernelView, opts: TaskWalkOptions, walk: Walk): Generator<GuestTask> {
  const init = initTask(view)
  const first = init === undefined ? undefined : readTask(view, init)
  if (init === undefined || !first) return
  walk.complete = true
  yield first
  for (const addr of listTasks(view, init + BigInt(off(view.btf, 'task_struct', 'tasks')), 'tasks', walk)) {
    const t = readTask(view, addr)
    if (!t) {
      walk.complete = false
      return
    }
    yield t
    if (!opts.threads) continue
    const signal = f64(view, addr, 'task_struct', 'signal')
    if (!isKernelPtr(signal)) {
      walk.complete = false
      continue
    }
    for (const th of listTasks(view, signal + BigInt(off(view.btf, 'signal_struct', 'thread_head')), 'thread_node', walk)) {
      if (th === addr) continue
      const tt = readTask(view, th)
      if (tt) yield tt
      else walk.complete = false
    }
  }
}
