/**
 * A CPU topology as a test sees it: CPUs, LLCs, NUMA nodes and SMT siblings, plus ktstr's cpuset
 * helpers (CpusetSpec: by LLC, by node, fractions, disjoint and overlapping splits). `topology()`
 * reads the running kernel's sysfs (in the guest: the VM's real layout); `topologyFromSpec('1n2l2c1t')`
 * builds the same object from the model, for planning and tests.
 */
import fs from 'node:fs'
import path from 'node:path'
import { formatCpuList, intersect, parseCpuList } from '../../protocol/cpulist.js'
import { KtstrError } from '../../protocol/errors.js'
import { resolveTopology } from '../../protocol/presets.js'
import { formatTopology, llcCpus, nodeCpus, type TopologySpec, validateTopology } from '../../protocol/topology.js'

export class Topo {
  /** Online CPU ids, ascending. */
  readonly cpus: readonly number[]
  /** CPUs of each LLC, LLCs ordered by their first CPU. */
  readonly llcs: readonly (readonly number[])[]
  /** CPUs of each NUMA node, by node id order. */
  readonly nodes: readonly (readonly number[])[]
  /** SMT sibling groups (one per physical core). */
  readonly cores: readonly (readonly number[])[]

  constructor(parts: { cpus: number[]; llcs: number[][]; nodes: number[][]; cores: number[][] }) {
    const sortAll = (groups: number[][]) =>
      groups
        .map((g) => [...new Set(g)].sort((a, b) => a - b))
        .filter((g) => g.length > 0)
        .sort((a, b) => a[0]! - b[0]!)
    this.cpus = [...new Set(parts.cpus)].sort((a, b) => a - b)
    this.llcs = sortAll(parts.llcs)
    this.nodes = parts.nodes.map((g) => [...g].sort((a, b) => a - b))
    this.cores = sortAll(parts.cores)
    if (this.cpus.length === 0) throw new KtstrError('topology has no CPUs')
  }

  get numCpus(): number {
    return this.cpus.length
  }

  /** The `NnNlNcNt` shape when the layout is regular (it is for every VM ktstr boots). */
  get spec(): TopologySpec | undefined {
    const llcsPerNode = this.nodes.map((n) => this.llcs.filter((l) => n.includes(l[0]!)).length)
    const coresPerLlc = this.llcs.map((l) => this.cores.filter((c) => l.includes(c[0]!)).length)
    const threads = this.cores.map((c) => c.length)
    const same = (xs: number[]) => xs.length > 0 && xs.every((x) => x === xs[0])
    if (!same(llcsPerNode) || !same(coresPerLlc) || !same(threads)) return undefined
    return { numaNodes: this.nodes.length, llcs: this.llcs.length, coresPerLlc: coresPerLlc[0]!, threadsPerCore: threads[0]! }
  }

  get smt(): boolean {
    return this.cores.some((c) => c.length > 1)
  }

  toString(): string {
    const s = this.spec
    return s ? `${formatTopology(s)} (${this.numCpus} CPUs)` : `${this.numCpus} CPUs, ${this.llcs.length} LLCs, ${this.nodes.length} nodes`
  }

  llcOf(cpu: number): number {
    return this.indexOf(this.llcs, cpu, 'LLC')
  }

  nodeOf(cpu: number): number {
    return this.indexOf(this.nodes, cpu, 'node')
  }

  /** SMT siblings of a CPU, itself included. */
  siblingsOf(cpu: number): number[] {
    return [...this.cores[this.indexOf(this.cores, cpu, 'core')]!]
  }

  /** One CPU per physical core (the first thread). */
  primaryThreads(): number[] {
    return this.cores.map((c) => c[0]!)
  }

  /**
   * The CPUs cpuset helpers split: all of them, less the last one when there are more than two,
   * which ktstr keeps back for the root cgroup (the test process itself, the scheduler).
   */
  usableCpus(): number[] {
    return this.cpus.length > 2 ? this.cpus.slice(0, -1) : [...this.cpus]
  }

  /** CPUs of LLC `i` (CpusetSpec::Llc). */
  llc(i: number): number[] {
    return [...this.pick(this.llcs, i, 'LLC')]
  }

  /** CPUs of NUMA node `i` (CpusetSpec::Numa). */
  node(i: number): number[] {
    return [...this.pick(this.nodes, i, 'NUMA node')]
  }

  /** A fraction of the usable CPUs, [start, end) in 0..1 (CpusetSpec::Range); at least one CPU. */
  range(startFrac: number, endFrac: number): number[] {
    if (!(startFrac >= 0 && endFrac <= 1 && startFrac < endFrac)) {
      throw new KtstrError(`bad cpuset range ${startFrac}..${endFrac}: need 0 <= start < end <= 1`)
    }
    const u = this.usableCpus()
    const a = Math.min(Math.floor(startFrac * u.length), u.length - 1)
    const b = Math.max(Math.ceil(endFrac * u.length), a + 1)
    return u.slice(a, b)
  }

  /** Part `index` of `of` equal, non-overlapping parts of the usable CPUs (CpusetSpec::Disjoint). */
  disjoint(index: number, of: number): number[] {
    const u = this.usableCpus()
    this.checkSplit(index, of, u.length)
    const a = Math.floor((index * u.length) / of)
    const b = Math.floor(((index + 1) * u.length) / of)
    return u.slice(a, b)
  }

  /** All `of` disjoint parts. */
  split(of: number): number[][] {
    return Array.from({ length: of }, (_, i) => this.disjoint(i, of))
  }

  /**
   * Part `index` of `of`, widened so neighbouring parts share about `frac` of a part's CPUs
   * (CpusetSpec::Overlap). Parts grow forward; the last one grows backward.
   */
  overlap(index: number, of: number, frac: number): number[] {
    if (!(frac >= 0 && frac <= 1)) throw new KtstrError(`bad overlap fraction ${frac}: need 0..1`)
    const u = this.usableCpus()
    this.checkSplit(index, of, u.length)
    let a = Math.floor((index * u.length) / of)
    let b = Math.floor(((index + 1) * u.length) / of)
    const extra = Math.ceil(frac * (b - a))
    if (index < of - 1) b = Math.min(u.length, b + extra)
    else a = Math.max(0, a - extra)
    return u.slice(a, b)
  }

  /** The given CPUs, checked against this topology (CpusetSpec::Exact). */
  exact(cpus: readonly number[] | string): number[] {
    const list = typeof cpus === 'string' ? parseCpuList(cpus) : [...new Set(cpus)].sort((a, b) => a - b)
    const missing = list.filter((c) => !this.cpus.includes(c))
    if (missing.length || list.length === 0) {
      throw new KtstrError(`cpuset ${formatCpuList(list) || '(empty)'} is not within this guest's CPUs ${formatCpuList(this.cpus)} (${this})`)
    }
    return list
  }

  /** `cpus` restricted to one LLC's CPUs, for LLC-aligned placement. */
  llcsWithin(cpus: readonly number[]): number[][] {
    return this.llcs.map((l) => intersect(l, cpus)).filter((l) => l.length > 0)
  }

  private checkSplit(index: number, of: number, n: number): void {
    if (!Number.isInteger(of) || of < 1 || !Number.isInteger(index) || index < 0 || index >= of) {
      throw new KtstrError(`bad cpuset split ${index} of ${of}: need a whole index in 0..${of - 1}`)
    }
    if (of > n) throw new KtstrError(`cannot split ${n} usable CPUs into ${of} parts (${this})`)
  }

  private pick(groups: readonly (readonly number[])[], i: number, what: string): readonly number[] {
    const g = groups[i]
    if (!Number.isInteger(i) || !g) throw new KtstrError(`no ${what} ${i}: this guest has ${groups.length} (${this})`)
    return g
  }

  private indexOf(groups: readonly (readonly number[])[], cpu: number, what: string): number {
    const i = groups.findIndex((g) => g.includes(cpu))
    if (i < 0) throw new KtstrError(`CPU ${cpu} is in no ${what} (${this})`)
    return i
  }
}

/** The model's layout: LLC-major, then core, then thread (the same numbering the VM gets). */
export function topologyFromSpec(spec: TopologySpec | string): Topo {
  const t = typeof spec === 'string' ? resolveTopology(spec) : validateTopology({ ...spec })
  const llcs = Array.from({ length: t.llcs }, (_, l) => llcCpus(t, l))
  const cores = llcs.flatMap((l) => Array.from({ length: t.coresPerLlc }, (_, c) => l.slice(c * t.threadsPerCore, (c + 1) * t.threadsPerCore)))
  const nodes = Array.from({ length: t.numaNodes }, (_, n) => nodeCpus(t, n))
  return new Topo({ cpus: llcs.flat(), llcs, nodes, cores })
}

/** Read the running kernel's topology from sysfs (`root` is /sys/devices/system, changeable for tests). */
export function topologyFromSysfs(root = '/sys/devices/system'): Topo {
  const read = (p: string) => {
    try {
      return fs.readFileSync(p, 'utf8').trim()
    } catch {
      return undefined
    }
  }
  const online = read(path.join(root, 'cpu', 'online'))
  if (online === undefined) throw new KtstrError(`cannot read ${root}/cpu/online: is sysfs mounted?`)
  const cpus = parseCpuList(online)
  const groupsBy = (key: (cpu: number) => string | undefined) => {
    const m = new Map<string, number[]>()
    for (const c of cpus) {
      const k = key(c) ?? `cpu${c}`
      m.set(k, [...(m.get(k) ?? []), c])
    }
    return [...m.values()]
  }
  const cpuDir = (c: number) => path.join(root, 'cpu', `cpu${c}`)
  const llcKey = (c: number) => {
    // The last-level cache is the highest-level unified/data cache; key by its shared_cpu_list
    // (the per-CPU `id` is meaningless on AMD-flavoured QEMU CPUs: docs/guest-facts.md).
    const dir = path.join(cpuDir(c), 'cache')
    let best: { level: number; list: string } | undefined
    for (const idx of safeReaddir(dir).filter((d) => /^index\d+$/.test(d))) {
      const level = Number(read(path.join(dir, idx, 'level')))
      const type = read(path.join(dir, idx, 'type'))
      const list = read(path.join(dir, idx, 'shared_cpu_list'))
      if (!list || type === 'Instruction' || !Number.isFinite(level)) continue
      if (!best || level > best.level) best = { level, list }
    }
    return best ? `llc:${formatCpuList(intersect(parseCpuList(best.list), cpus))}` : pkgKey(c)
  }
  const pkgKey = (c: number) => {
    const list = read(path.join(cpuDir(c), 'topology', 'package_cpus_list')) ?? read(path.join(cpuDir(c), 'topology', 'core_siblings_list'))
    return list ? `pkg:${list}` : 'all'
  }
  const coreKey = (c: number) => {
    const list = read(path.join(cpuDir(c), 'topology', 'thread_siblings_list')) ?? read(path.join(cpuDir(c), 'topology', 'core_cpus_list'))
    return list ? `core:${formatCpuList(intersect(parseCpuList(list), cpus))}` : undefined
  }
  const nodeDirs = safeReaddir(path.join(root, 'node'))
    .filter((d) => /^node\d+$/.test(d))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
  const nodes = nodeDirs.map((d) => intersect(parseCpuList(read(path.join(root, 'node', d, 'cpulist')) ?? ''), cpus)).filter((n) => n.length > 0)
  return new Topo({ cpus, llcs: groupsBy(llcKey), nodes: nodes.length ? nodes : [cpus], cores: groupsBy(coreKey) })
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

let current: Topo | undefined

/** This machine's topology (the guest's, inside a sched test), read once. */
export function topology(): Topo {
  current ??= topologyFromSysfs()
  return current
}
