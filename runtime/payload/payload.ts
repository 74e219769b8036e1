/**
 * Payloads: real programs (schbench, stress-ng, a kernel selftest, a reproducer) run inside the
 * guest from a sched test file, optionally in their own cgroup or cpuset, in the background
 * beside a workload. The program must be in the guest image: add it with the file's
 * `@ktstr include=…` (or the plugin's `include` option); its libraries come along.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { parseTap, type TapCase } from './tap.js'

export interface PayloadOptions {
  args?: string[]
  env?: Record<string, string>
  cwd?: string
  /** Run it in this cgroup (created under /sys/fs/cgroup if missing). */
  cgroup?: string
  /** CPUs it may use: '0-1', [0, 1]. With `cgroup`, the cgroup's cpuset; otherwise its affinity. */
  cpuset?: string | number[]
  /** Kill it and every process it started (SIGKILL to its process group) after this long: ms or '10s'. The result then has `timedOut: true`. */
  timeout?: number | string
  /** How to read its stdout: `json` parses it, `tap` parses TAP/KTAP results. */
  output?: 'text' | 'json' | 'tap'
  input?: string | Buffer
}

export interface PayloadResult {
  command: string[]
  exitCode: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  stdout: string
  stderr: string
  wallMs: number
  /** output: 'json' — the parsed document and its numeric leaves by dotted path. */
  json?: unknown
  metrics?: Record<string, number>
  /** output: 'tap' — one entry per result line. */
  tap?: TapCase[]
}

const CGROUP_ROOT = '/sys/fs/cgroup'
const SH = '/ktstr/bin/sh'

export async function payload(program: string, opts: PayloadOptions = {}): Promise<PayloadResult> {
  if (program.startsWith('/') && !fs.existsSync(program)) {
    throw new Error(`payload ${program} is not in the guest image; add it with the file's @ktstr include=${program}`)
  }
  const args = opts.args ?? []
  const cpus = opts.cpuset === undefined ? undefined : Array.isArray(opts.cpuset) ? opts.cpuset.join(',') : opts.cpuset
  let argv = [program, ...args]
  if (opts.cgroup) {
    const dir = prepareCgroup(opts.cgroup, cpus)
    // Join the cgroup before exec, so not a single instruction runs outside it.
    argv = [SH, '-c', `echo $$ > ${dir}/cgroup.procs && exec "$@"`, 'ktstr-payload', ...argv]
  } else if (cpus !== undefined) {
    argv = ['/ktstr/bin/taskset', '-c', cpus, ...argv]
  }
  const start = performance.now()
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd ?? process.cwd(),
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group, so the timeout reaches what it started too (a child holding its stdout).
    detached: true,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')))
  child.stdin.on('error', () => {})
  child.stdin.end(opts.input ?? '')
  let timedOut = false
  const limit = opts.timeout === undefined ? undefined : toMs(opts.timeout)
  const timer = limit === undefined ? undefined : setTimeout(() => ((timedOut = true), killGroup(child)), limit)
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`payload ${program} could not start: ${e.message}`)))
    child.on('close', (c, s) => resolve({ code: c, signal: s }))
  }).finally(() => clearTimeout(timer))
  const result: PayloadResult = {
    command: [program, ...args],
    exitCode: code,
    signal,
    timedOut,
    stdout,
    stderr,
    wallMs: performance.now() - start,
  }
  if (opts.output === 'json') {
    try {
      result.json = JSON.parse(stdout)
    } catch (e) {
      throw new Error(`payload ${program} did not print JSON (${(e as Error).message}); stdout starts ${JSON.stringify(stdout.slice(0, 80))}`)
    }
    result.metrics = numericLeaves(result.json)
  } else if (opts.output === 'tap') {
    result.tap = parseTap(stdout)
  }
  return result
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
}

function prepareCgroup(name: string, cpus: string | undefined): string {
  const dir = path.join(CGROUP_ROOT, name)
  if (cpus !== undefined) enableController('cpuset', path.dirname(dir))
  fs.mkdirSync(dir, { recursive: true })
  if (cpus !== undefined) fs.writeFileSync(path.join(dir, 'cpuset.cpus'), cpus)
  return dir
}

/** Let children of `dir` (and of each ancestor below the root) use `controller`. */
function enableController(controller: string, dir: string): void {
  const chain: string[] = []
  for (let d = dir; d.startsWith(CGROUP_ROOT); d = path.dirname(d)) {
    chain.unshift(d)
    if (d === CGROUP_ROOT) break
  }
  for (const d of chain) {
    const control = path.join(d, 'cgroup.subtree_control')
    if (!fs.readFileSync(control, 'utf8').split(/\s+/).includes(controller)) fs.writeFileSync(control, `+${controller}`)
  }
}

/** `{a: {b: 1}, c: [2]}` → `{'a.b': 1, 'c.0': 2}` */
export function numericLeaves(v: unknown, prefix = '', out: Record<string, number> = {}): Record<string, number> {
  if (typeof v === 'number' && Number.isFinite(v)) out[prefix] = v
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) numericLeaves(x, prefix ? `${prefix}.${k}` : k, out)
  }
  return out
}

function toMs(t: number | string): number {
  if (typeof t === 'number') return t
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(t.trim())
  if (!m) throw new Error(`bad payload timeout "${t}": use ms or a string like "10s"`)
  return Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 1)
}
