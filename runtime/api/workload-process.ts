/**
 * One ktstr-workload process and its line protocol (see runtime/workloads/ktstr-workload.c):
 * spawn → (parent places it in its cgroup) → setup() → ready → go(t0) → stop(t) → report.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { KtstrError } from '../protocol/errors.js'
import type { WorkSpec } from './work.js'

/** What the workload prints when it stops (field names as in the C program). */
export interface RawWorkloadReport {
  pid: number
  type: string
  workUnits: number
  iterations: number
  wallTimeNs: number
  cpuTimeNs: number
  schedstat: boolean
  schedCpuTimeNs: number
  runDelayNs: number
  timeslices: number
  maxGapNs: number
  maxGapCpu: number
  maxGapAtNs: number
  migrations: number
  /** [atNs, from, to], relative to go */
  migrationEvents: [number, number, number][]
  /** [cpu, firstNs, lastNs], relative to go */
  cpus: [number, number, number][]
  wakeSamples: number
  wakeLatencyMaxNs: number
  wakeLatencySumNs: number
  wakeLatencyNs: number[]
  policy: string
  nice: number
  stoppedBy: 'signal' | 'deadline'
  counters: Record<string, number>
}

export const monotonicNs = (): number => Number(process.hrtime.bigint())

const SETUP_TIMEOUT_MS = 10_000
const REPORT_TIMEOUT_MS = 10_000

/** dist/runtime/ktstr-workload, found from this module whether it runs compiled (dist) or as source. */
export function workloadBinary(): string {
  const env = process.env.KTSTR_WORKLOAD
  if (env) return env
  const here = path.dirname(fileURLToPath(import.meta.url))
  const candidates = [path.join(here, '..', 'ktstr-workload'), path.join(here, '..', '..', 'dist', 'runtime', 'ktstr-workload')]
  const found = candidates.find((p) => fs.existsSync(p))
  if (!found) {
    throw new KtstrError(`the workload program is missing (looked for ${candidates.join(', ')}); build it with \`npm run build\` (needs gcc: apt-get install gcc)`)
  }
  return found
}

export interface WorkloadArgs {
  work: WorkSpec
  affinity?: readonly number[]
  pair?: { path: string; role: 0 | 1 }
  ioOffset?: number
  /** Safety deadline: the workload stops by itself after this long (ms after go). */
  maxMs?: number
  seed?: number
}

export function workloadArgv(a: WorkloadArgs): string[] {
  const w = a.work
  const argv = ['run', '--type', w.type]
  if (w.policy) argv.push('--policy', w.policy)
  if (w.priority !== undefined) argv.push('--priority', String(w.priority))
  if (w.nice !== undefined) argv.push('--nice', String(w.nice))
  if (w.burstMs !== undefined) argv.push('--burst-ms', String(w.burstMs))
  if (w.sleepMs !== undefined) argv.push('--sleep-ms', String(w.sleepMs))
  if (w.sizeKb !== undefined) argv.push('--size-kb', String(w.sizeKb))
  if (w.stride !== undefined) argv.push('--stride', String(w.stride))
  if (w.spinIters !== undefined) argv.push('--spin-iters', String(w.spinIters))
  if (w.path !== undefined) argv.push('--io-path', w.path)
  if (a.ioOffset !== undefined) argv.push('--io-offset', String(a.ioOffset))
  if (a.affinity?.length) argv.push('--affinity', a.affinity.join(','))
  if (a.pair) argv.push('--pair', a.pair.path, '--role', String(a.pair.role))
  if (a.maxMs !== undefined) argv.push('--max-ms', String(Math.ceil(a.maxMs)))
  if (a.seed !== undefined) argv.push('--seed', String(a.seed))
  argv.push('--parent', String(process.pid))
  return argv
}

export class WorkloadProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly pid: number
  private lines: string[] = []
  private waiters: ((line: string | undefined) => void)[] = []
  private stderr = ''
  private exited = false
  private exitInfo = ''
  private readonly exitPromise: Promise<void>

  constructor(
    readonly label: string,
    args: WorkloadArgs,
    binary = workloadBinary(),
  ) {
    this.child = spawn(binary, workloadArgv(args), { stdio: ['pipe', 'pipe', 'pipe'] })
    if (this.child.pid === undefined) throw new KtstrError(`${label}: could not start ${binary}`)
    this.pid = this.child.pid
    let buf = ''
    this.child.stdout.setEncoding('utf8')
    this.child.stdout.on('data', (chunk: string) => {
      buf += chunk
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        this.push(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
      }
    })
    this.child.stderr.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString('utf8')).slice(-4096)))
    this.child.stdin.on('error', () => {}) // EPIPE when it died; reported through the exit
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true
        this.exitInfo = signal ? `killed by ${signal}` : `exit code ${code}`
        resolve()
      })
      this.child.on('error', (err) => {
        this.exited = true
        this.exitInfo = err.message
        resolve()
      })
    })
    this.child.stdout.on('end', () => {
      for (const w of this.waiters.splice(0)) w(undefined)
    })
  }

  get isRunning(): boolean {
    return !this.exited
  }

  private push(line: string): void {
    const w = this.waiters.shift()
    if (w) w(line)
    else this.lines.push(line)
  }

  private nextLine(timeoutMs: number): Promise<string | undefined> {
    const l = this.lines.shift()
    if (l !== undefined) return Promise.resolve(l)
    if (this.child.stdout.readableEnded) return Promise.resolve(undefined)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done)
        resolve(undefined)
      }, timeoutMs)
      const done = (line: string | undefined) => {
        clearTimeout(timer)
        resolve(line)
      }
      this.waiters.push(done)
    })
  }

  private async parsed(timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    const line = await this.nextLine(timeoutMs)
    if (line === undefined) {
      if (!this.exited) await Promise.race([this.exitPromise, new Promise((r) => setTimeout(r, 200))])
      const why = this.exited ? this.exitInfo : `nothing within ${timeoutMs / 1000} s`
      throw new KtstrError(`${this.label} (pid ${this.pid}) gave no ${what}: ${why}${this.stderr ? `; stderr: ${this.stderr.trim()}` : ''}`)
    }
    let obj: Record<string, unknown>
    try {
      obj = JSON.parse(line) as Record<string, unknown>
    } catch {
      throw new KtstrError(`${this.label} (pid ${this.pid}) printed a malformed ${what}: ${line.slice(0, 200)}`)
    }
    if (typeof obj.error === 'string') throw new KtstrError(`${this.label} (pid ${this.pid}) failed: ${obj.error}`)
    return obj
  }

  /** Phase 1: it is in its cgroup; it applies policy/nice/affinity, meets its partner, says ready. */
  async setup(): Promise<void> {
    this.child.stdin.write('S\n')
    await this.parsed(SETUP_TIMEOUT_MS, 'ready line')
  }

  go(t0Ns: number): void {
    this.child.stdin.write(`G ${t0Ns}\n`)
  }

  /** Ask it to stop (the stop time travels first, then SIGUSR1) and read its report. */
  async stop(atNs: number): Promise<RawWorkloadReport> {
    if (!this.exited) {
      await new Promise<void>((resolve) => this.child.stdin.write(`Q ${atNs}\n`, () => resolve()))
      this.signal('SIGUSR1')
    }
    const obj = await this.parsed(REPORT_TIMEOUT_MS, 'report')
    await Promise.race([this.exitPromise, new Promise((r) => setTimeout(r, 2000))])
    return obj as unknown as RawWorkloadReport
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.exited) {
      try {
        process.kill(this.pid, sig)
      } catch {
        /* already gone */
      }
    }
  }

  async kill(): Promise<void> {
    this.signal('SIGKILL')
    await Promise.race([this.exitPromise, new Promise((r) => setTimeout(r, 2000))])
  }
}

/** sched_setaffinity on a running workload (through the workload program's helper mode). */
export function setAffinity(pid: number, cpus: readonly number[], binary = workloadBinary()): void {
  const r = spawnSync(binary, ['setaffinity', String(pid), cpus.join(',')], { encoding: 'utf8' })
  if (r.status !== 0) throw new KtstrError(`setting the affinity of pid ${pid} to ${cpus.join(',')} failed: ${(r.stderr || r.error?.message || '').trim()}`)
}

/**
 * Set a thread's scheduling policy (children reset to SCHED_OTHER on fork) and return the previous
 * one, through the workload program's helper mode.
 */
export function setScheduler(tid: number, policy: string, priority: number, binary = workloadBinary()): { policy: string; priority: number } {
  const r = spawnSync(binary, ['setscheduler', String(tid), policy, String(priority)], { encoding: 'utf8' })
  if (r.status !== 0) throw new KtstrError(`setting the scheduling policy of ${tid} to ${policy} ${priority} failed: ${(r.stderr || r.error?.message || '').trim()}`)
  const [old, prio] = r.stdout.trim().split(' ')
  return { policy: old!, priority: Number(prio) }
}
