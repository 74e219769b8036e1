/**
 * The scheduler under test: start it, prove it attached, watch it, stop it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import { schedGetaffinity, schedSetaffinity } from '../../native-shims/libc.js'
import { parseCpuList } from '../protocol/cpulist.js'
import type { SchedulerExit, SchedulerSpec } from '../protocol/index.js'
import { schedExtExitLine } from './kmsg.js'

const SCX = '/sys/kernel/sched_ext'
const OUTPUT_KEEP = 16 * 1024
/** How often the attach wait reads sched_ext's state: its wait adds up to this to every run. */
const ATTACH_POLL_MS = 50

export type StartResult = { ok: true; scheduler: RunningScheduler } | { ok: false; message: string; exit?: SchedulerExit }

export class RunningScheduler {
  private output = ''
  private exitInfo: { code: number | null; signal: string | null } | undefined
  private exitWaiters: (() => void)[] = []

  constructor(
    readonly spec: SchedulerSpec,
    private readonly child: ChildProcess,
  ) {
    const keep = (b: Buffer) => {
      this.output = (this.output + b.toString('utf8')).slice(-OUTPUT_KEEP)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    child.on('exit', (code, signal) => {
      this.exitInfo = { code, signal }
      for (const w of this.exitWaiters.splice(0)) w()
    })
    child.on('error', (err) => {
      this.output += `\n${err.message}`
      this.exitInfo ??= { code: null, signal: null }
      for (const w of this.exitWaiters.splice(0)) w()
    })
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  get exited(): boolean {
    return this.exitInfo !== undefined
  }

  waitExit(): Promise<void> {
    return this.exited ? Promise.resolve() : new Promise((r) => this.exitWaiters.push(r))
  }

  exit(): SchedulerExit {
    const reason = schedExtExitLine()
    return {
      code: this.exitInfo?.code ?? null,
      signal: this.exitInfo?.signal ?? null,
      output: this.output.trim(),
      ...(reason ? { reason } : {}),
    }
  }

  /**
   * exit(), after giving the process up to `waitMs` to finish dying (its status) and the kernel to
   * log why sched_ext disabled it: an ejection is seen in sysfs before either is in.
   */
  async settledExit(waitMs = 1000): Promise<SchedulerExit> {
    const deadline = Date.now() + waitMs
    while ((!this.exited || !schedExtExitLine()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    return this.exit()
  }

  /** Ask it to detach (SIGINT, as a user's Ctrl-C), then SIGKILL after a grace period. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exited) return
    this.child.kill('SIGINT')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    await this.waitExit()
    clearTimeout(timer)
  }
}

export function schedExtState(): string | undefined {
  return readTrim(`${SCX}/state`)
}

export function schedExtOps(): string | undefined {
  return readTrim(`${SCX}/root/ops`)
}

/**
 * Start the scheduler pinned to CPU 0 (some schedulers, e.g. scx_central, must initialise on
 * their central CPU: measured 4 of 6 loads failing unpinned), wait until sched_ext reports it
 * enabled under its ops name, then let it run on every online CPU again.
 */
export async function startScheduler(spec: SchedulerSpec, timeoutMs: number): Promise<StartResult> {
  if (!fs.existsSync(`${SCX}/state`)) {
    return { ok: false, message: `this kernel has no sched_ext (${SCX} is missing); build one with \`ktstr kernel build\`` }
  }
  // ops.init runs on a kthread sched_ext creates at load time; it starts where kthreadd forks it.
  // Schedulers that must initialise on CPU 0 (scx_central: "init from non-central CPU") fail at
  // random unless kthreadd is pinned there for the load. Restored afterwards.
  const restore = pinKthreadd()
  try {
    return await startOnce(spec, timeoutMs)
  } finally {
    restore()
  }
}

/** PID of kthreadd, the parent of every kernel thread. */
const KTHREADD = 2

// Affinity is set with sched_setaffinity(2) itself: a taskset process per step cost ~0.3 s of a
// TCG guest's attach (forking node).
function pinKthreadd(): () => void {
  let before: number[]
  try {
    before = schedGetaffinity(KTHREADD)
    schedSetaffinity(KTHREADD, [0])
  } catch {
    return () => {}
  }
  return () => {
    try {
      schedSetaffinity(KTHREADD, before)
    } catch {
      // kthreadd keeps CPU 0 only; new kernel threads still run anywhere they are bound to.
    }
  }
}

/** Spawned while this (the main) thread runs on CPU 0 alone: the child inherits the mask. */
function spawnOnCpu0(spec: SchedulerSpec): ChildProcess {
  const mine = schedGetaffinity(0)
  schedSetaffinity(0, [0])
  try {
    return spawn(spec.path, spec.args, { stdio: ['ignore', 'pipe', 'pipe'] })
  } finally {
    schedSetaffinity(0, mine)
  }
}

/** Every thread of `pid` may run on every online CPU again. */
function unpin(pid: number): void {
  const online = readTrim('/sys/devices/system/cpu/online')
  if (!online) return
  const cpus = parseCpuList(online)
  let tids: string[]
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return // gone already: its exit is seen by the caller's watch
  }
  for (const tid of tids) {
    try {
      schedSetaffinity(Number(tid), cpus)
    } catch {
      // a thread that exited meanwhile
    }
  }
}

async function startOnce(spec: SchedulerSpec, timeoutMs: number): Promise<StartResult> {
  const child = spawnOnCpu0(spec)
  const sched = new RunningScheduler(spec, child)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (sched.exited) {
      const exit = sched.exit()
      return { ok: false, message: `scheduler ${spec.name} exited before attaching (${describeExit(exit)})`, exit }
    }
    const state = schedExtState()
    const ops = schedExtOps()
    if (state === 'enabled' && ops && (spec.opsName === undefined || ops === spec.opsName)) break
    if (Date.now() > deadline) {
      await sched.stop(500)
      const seen = `state=${state ?? '?'}${ops ? `, ops=${ops}` : ''}`
      return {
        ok: false,
        message: `scheduler ${spec.name} did not attach within ${timeoutMs / 1000}s (${seen}${spec.opsName ? `, expected ops=${spec.opsName}` : ''})`,
        exit: sched.exit(),
      }
    }
    await new Promise((r) => setTimeout(r, ATTACH_POLL_MS))
  }
  if (sched.pid) unpin(sched.pid)
  return { ok: true, scheduler: sched }
}

/**
 * Calls `onGone` once if the scheduler process exits or sched_ext stops running it (e.g. the
 * sched_ext watchdog ejected it) while it is being watched. Returns a function that stops watching.
 */
export function watchScheduler(sched: RunningScheduler, onGone: (exit: SchedulerExit) => void, everyMs = 200): () => void {
  let fired = false
  const fire = () => {
    if (fired) return
    fired = true
    clearInterval(timer)
    void sched.settledExit().then(onGone)
  }
  const timer = setInterval(() => {
    if (schedExtState() !== 'enabled') fire()
  }, everyMs)
  void sched.waitExit().then(fire)
  return () => {
    fired = true
    clearInterval(timer)
  }
}

export function describeExit(e: SchedulerExit): string {
  const how = e.signal ? `killed by ${e.signal}` : e.code === null ? 'did not start' : `exit code ${e.code}`
  return e.reason ? `${how}; kernel: ${e.reason}` : how
}

function readTrim(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch {
    return undefined
  }
}
