/**
 * `cgroup(name)`: a cgroup of the scenario, its cpuset and its workloads (ktstr CgroupDef). Immutable:
 * each call returns a new definition, so a base definition can be reused across scenarios.
 * Names may nest with '/', e.g. 'cg_0/sub_a'; parents are created as needed.
 */
import { KtstrError } from '../protocol/errors.js'
import type { Topo } from './topology/topo.js'
import { isPaired, type WorkSpec, work } from './work.js'

/** A cpuset: a cpulist string ('0-1'), CPU ids, or a helper over the topology (`t => t.llc(0)`). */
export type CpusetInput = string | readonly number[] | ((t: Topo) => readonly number[])

/**
 * Per-workload CPU affinity inside the cgroup's cpuset (ktstr AffinityKind): 'inherit' (none),
 * 'single-cpu' (workload i on the i-th CPU), 'llc-aligned' (workload i on the i-th LLC's CPUs),
 * 'random-subset' (a random half), 'cross-cgroup' (every CPU; the cpuset still bounds it),
 * or explicit CPUs / a function of (topology, workload index, cpuset CPUs).
 */
export type AffinityInput =
  | 'inherit'
  | 'single-cpu'
  | 'llc-aligned'
  | 'random-subset'
  | 'cross-cgroup'
  | string
  | readonly number[]
  | ((t: Topo, worker: number, cpuset: readonly number[]) => readonly number[])

export interface WorkerGroup {
  readonly count: number
  readonly work: WorkSpec
  readonly affinity?: AffinityInput
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/

export function validateCgroupName(name: string): string {
  const segs = name.split('/')
  if (!name || segs.some((s) => !SEGMENT.test(s))) {
    throw new KtstrError(`bad cgroup name "${name}": use letters, digits, '_', '-', '.', nested with '/', e.g. 'cg_0/sub_a'`)
  }
  return name
}

export class CgroupDef {
  readonly name: string
  readonly groups: readonly WorkerGroup[]
  readonly cpusetInput: CpusetInput | undefined

  constructor(name: string, groups: readonly WorkerGroup[] = [], cpuset?: CpusetInput) {
    this.name = validateCgroupName(name)
    this.groups = groups
    this.cpusetInput = cpuset
  }

  /** Add `n` workloads doing `w` (default: spin). Pipe and futex workloads come in pairs, so `n` must be even. */
  workers(n: number, w: WorkSpec = work.spin(), opts: { affinity?: AffinityInput } = {}): CgroupDef {
    if (!Number.isInteger(n) || n < 1) throw new KtstrError(`cgroup "${this.name}": workers(n) needs a whole number >= 1, got ${n}`)
    if (isPaired(w) && n % 2 !== 0) {
      throw new KtstrError(`cgroup "${this.name}": ${w.type} workers run in pairs; give an even number of workers (got ${n})`)
    }
    const group: WorkerGroup = opts.affinity === undefined ? { count: n, work: w } : { count: n, work: w, affinity: opts.affinity }
    return new CgroupDef(this.name, [...this.groups, group], this.cpusetInput)
  }

  /** Restrict the cgroup to CPUs: '0-1', [0, 1], or a topology helper such as `t => t.llc(0)`. */
  cpuset(c: CpusetInput): CgroupDef {
    return new CgroupDef(this.name, this.groups, c)
  }

  get workerCount(): number {
    return this.groups.reduce((n, g) => n + g.count, 0)
  }
}

export function cgroup(name: string): CgroupDef {
  return new CgroupDef(name)
}
