/**
 * The run's cgroup v2 subtree: /sys/fs/cgroup/ktstr-<pid>-<n>/<name>. The cpuset and cpu controllers
 * are enabled down to the test cgroups; nested parents get them only when a child needs its own
 * cpuset, because a cgroup with controllers enabled for its children may hold no tasks itself
 * (Documentation/admin-guide/cgroup-v2.rst, "No Internal Process Constraint").
 */
import fs from 'node:fs'
import path from 'node:path'
import { formatCpuList, parseCpuList } from '../protocol/cpulist.js'
import { KtstrError } from '../protocol/errors.js'

export const CGROUP_ROOT = '/sys/fs/cgroup'
const CONTROLLERS = ['cpuset', 'cpu']

let runSeq = 0

export class CgroupTree {
  readonly root: string
  private readonly made: string[] = []

  constructor(mount = process.env.KTSTR_CGROUP_ROOT ?? CGROUP_ROOT) {
    const controllersFile = path.join(mount, 'cgroup.controllers')
    if (!fs.existsSync(controllersFile)) {
      throw new KtstrError(`cgroup v2 is not mounted at ${mount} (no cgroup.controllers); run the test inside a ktstr guest, or mount cgroup2 there`)
    }
    const available = fs.readFileSync(controllersFile, 'utf8').trim().split(/\s+/)
    const missing = CONTROLLERS.filter((c) => !available.includes(c))
    if (missing.length) {
      throw new KtstrError(`the kernel's cgroup v2 lacks the ${missing.join(' and ')} controller(s); build the guest kernel with CONFIG_CPUSETS=y and CONFIG_CGROUP_SCHED=y`)
    }
    enable(mount)
    this.root = path.join(mount, `ktstr-${process.pid}-${runSeq++}`)
    fs.mkdirSync(this.root)
    this.made.push(this.root)
    enable(this.root)
  }

  path(name: string): string {
    return name === '/' ? this.root : path.join(this.root, ...name.split('/'))
  }

  has(name: string): boolean {
    return fs.existsSync(this.path(name))
  }

  /** Create `name` and any missing parents. */
  create(name: string): void {
    const segs = name.split('/')
    for (let i = 1; i <= segs.length; i++) {
      const p = this.path(segs.slice(0, i).join('/'))
      if (!fs.existsSync(p)) {
        fs.mkdirSync(p)
        this.made.push(p)
      }
    }
  }

  /**
   * Write cpuset.cpus. [] clears it: the kernel refuses an empty list while the cgroup has tasks
   * (ENOSPC, kernel/cgroup/cpuset.c validate_change()), so a clear writes the parent's effective CPUs.
   */
  setCpus(name: string, cpus: readonly number[]): void {
    const segs = name.split('/')
    // Every ancestor below the run root must pass cpuset down to this cgroup.
    for (let i = 1; i < segs.length; i++) {
      const parent = segs.slice(0, i).join('/')
      if (!this.controllersOn(parent)) {
        if (this.procs(parent).length) {
          throw new KtstrError(`cgroup "${name}" cannot get its own cpuset: its parent "${parent}" holds tasks (cgroup v2 lets only task-free cgroups pass controllers down)`)
        }
        enable(this.path(parent))
      }
    }
    const parent = segs.length > 1 ? segs.slice(0, -1).join('/') : '/'
    const list = cpus.length ? cpus : this.effectiveCpus(parent)
    try {
      fs.writeFileSync(path.join(this.path(name), 'cpuset.cpus'), `${formatCpuList(list)}\n`)
    } catch (e) {
      throw new KtstrError(`setting the cpuset of cgroup "${name}" to ${formatCpuList(cpus) || '(none)'} failed: ${(e as Error).message}`)
    }
  }

  effectiveCpus(name: string): number[] {
    // A cgroup without the cpuset controller has no cpuset files; it runs on its nearest ancestor's.
    let n: string | undefined = name
    for (;;) {
      const file = path.join(this.path(n ?? '/'), 'cpuset.cpus.effective')
      if (fs.existsSync(file)) return parseCpuList(fs.readFileSync(file, 'utf8'))
      if (!n || n === '/') break
      n = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '/'
    }
    return parseCpuList(fs.readFileSync(path.join(path.dirname(this.root), 'cpuset.cpus.effective'), 'utf8'))
  }

  addProc(name: string, pid: number): void {
    try {
      fs.writeFileSync(path.join(this.path(name), 'cgroup.procs'), String(pid))
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      const why = code === 'EBUSY' ? `it has child cgroups with controllers enabled, so it may hold no tasks` : (e as Error).message
      throw new KtstrError(`moving pid ${pid} into cgroup "${name}" failed: ${why}`)
    }
  }

  procs(name: string): number[] {
    try {
      return fs
        .readFileSync(path.join(this.path(name), 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number)
    } catch {
      return []
    }
  }

  private controllersOn(name: string): boolean {
    const sc = fs.readFileSync(path.join(this.path(name), 'cgroup.subtree_control'), 'utf8')
    return CONTROLLERS.every((c) => sc.includes(c))
  }

  /** Remove `name` and everything below it (its tasks must be gone). */
  async remove(name: string): Promise<void> {
    const top = this.path(name)
    const below = this.made.filter((p) => p === top || p.startsWith(top + path.sep)).sort((a, b) => b.length - a.length)
    for (const p of below) await rmdirRetry(p)
    for (const p of below) this.made.splice(this.made.indexOf(p), 1)
  }

  /** Remove the whole run subtree, deepest first. */
  async destroy(): Promise<void> {
    for (const p of [...this.made].sort((a, b) => b.length - a.length)) await rmdirRetry(p)
    this.made.length = 0
  }
}

function enable(dir: string): void {
  const file = path.join(dir, 'cgroup.subtree_control')
  const on = fs.readFileSync(file, 'utf8')
  const want = CONTROLLERS.filter((c) => !on.split(/\s+/).includes(c))
  if (want.length === 0) return
  try {
    fs.writeFileSync(file, want.map((c) => `+${c}`).join(' '))
  } catch (e) {
    throw new KtstrError(`enabling ${want.join(', ')} in ${file} failed: ${(e as Error).message}`)
  }
}

/** rmdir, retrying briefly while exiting tasks still pin the cgroup (EBUSY). */
async function rmdirRetry(p: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      fs.rmdirSync(p)
      return
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EBUSY' || i >= 50) throw new KtstrError(`removing cgroup ${p} failed: ${(e as Error).message}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}
