import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cpuCount, findPreset, formatCpuList, formatTopology, PRESETS, parseTopology, presetNames, resolveTopology, topologyFromSpec, topologyFromSysfs } from 'ktstr'
import { afterAll, describe, expect, it } from 'vitest'

describe('NnNlNcNt model', () => {
  it('parses and formats', () => {
    expect(parseTopology('1n2l4c1t')).toEqual({ numaNodes: 1, llcs: 2, coresPerLlc: 4, threadsPerCore: 1 })
    expect(formatTopology(parseTopology(' 2n4l4c2t '))).toBe('2n4l4c2t')
  })

  it('explains what is wrong', () => {
    expect(() => parseTopology('1n2l')).toThrow(/bad topology "1n2l": expected NnNlNcNt .* e\.g\. 1n2l4c1t/)
    expect(() => parseTopology('2n3l2c1t')).toThrow(/3 LLCs cannot be spread evenly over 2 NUMA nodes; use a multiple of 2 LLCs/)
    expect(() => parseTopology('1n0l2c1t')).toThrow(/LLCs must be at least 1/)
    expect(() => parseTopology('1n1l2c4t')).toThrow(/at most 2 threads per core/)
    expect(() => parseTopology('1n16l16c2t')).toThrow(/512 CPUs exceed the guest kernel's limit of 256/)
  })

  it('round-trips every preset through its NnNlNcNt string', () => {
    for (const p of PRESETS) {
      const s = formatTopology(p.topology)
      expect(parseTopology(s)).toEqual(p.topology)
      expect(resolveTopology(p.name)).toEqual(p.topology)
    }
  })
})

describe('ktstr presets', () => {
  // ktstr src/vm.rs gauntlet_presets_topology_pinned: (name, LLCs, CPUs)
  const pinned: [string, number, number][] = [
    ['tiny-1llc', 1, 4],
    ['tiny-2llc', 2, 4],
    ['odd-3llc', 3, 9],
    ['odd-5llc', 5, 15],
    ['odd-7llc', 7, 14],
    ['smt-2llc', 2, 8],
    ['smt-3llc', 3, 12],
    ['medium-4llc', 4, 32],
    ['medium-8llc', 8, 64],
    ['large-4llc', 4, 128],
    ['large-8llc', 8, 128],
    ['near-max-llc', 15, 240],
    ['max-cpu', 14, 252],
    ['medium-4llc-nosmt', 4, 32],
    ['medium-8llc-nosmt', 8, 64],
    ['large-4llc-nosmt', 4, 128],
    ['large-8llc-nosmt', 8, 128],
    ['near-max-llc-nosmt', 15, 240],
    ['max-cpu-nosmt', 14, 252],
    ['numa2-4llc', 4, 16],
    ['numa2-8llc', 8, 128],
    ['numa2-8llc-nosmt', 8, 128],
    ['numa4-8llc', 8, 32],
    ['numa4-12llc', 12, 192],
  ]

  it('has the 24 x86_64 presets with ktstr’s LLC and CPU counts', () => {
    expect(PRESETS).toHaveLength(24)
    expect(PRESETS.map((p) => p.name)).toEqual(pinned.map(([n]) => n))
    for (const [name, llcs, cpus] of pinned) {
      const p = findPreset(name)!
      expect(p.topology.llcs, name).toBe(llcs)
      expect(cpuCount(p.topology), name).toBe(cpus)
      expect(p.description).toContain(String(cpus))
    }
  })

  it('drops SMT presets on aarch64 (14 left) and resolves names or NnNlNcNt', () => {
    expect(presetNames('aarch64')).toHaveLength(14)
    expect(presetNames('aarch64').every((n) => findPreset(n)!.topology.threadsPerCore === 1)).toBe(true)
    expect(resolveTopology('smt-2llc')).toEqual({ numaNodes: 1, llcs: 2, coresPerLlc: 2, threadsPerCore: 2 })
    expect(resolveTopology('numa2-4llc')).toEqual({ numaNodes: 2, llcs: 4, coresPerLlc: 4, threadsPerCore: 1 })
    expect(resolveTopology('1n2l2c1t').llcs).toBe(2)
    expect(() => resolveTopology('tiny-3llc')).toThrow(/expected NnNlNcNt .* or a preset name/)
  })
})

describe('topology helpers over a synthetic topology', () => {
  it('numbers CPUs as the VM does: LLC-major, SMT siblings adjacent, nodes over LLCs', () => {
    const t = topologyFromSpec('2n4l2c2t')
    expect(t.numCpus).toBe(16)
    expect(t.llcs).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9, 10, 11],
      [12, 13, 14, 15],
    ])
    expect(t.nodes).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7],
      [8, 9, 10, 11, 12, 13, 14, 15],
    ])
    expect(t.siblingsOf(5)).toEqual([4, 5])
    expect(t.llcOf(5)).toBe(1)
    expect(t.nodeOf(9)).toBe(1)
    expect(t.primaryThreads()).toEqual([0, 2, 4, 6, 8, 10, 12, 14])
    expect(t.smt).toBe(true)
    expect(t.spec).toEqual({ numaNodes: 2, llcs: 4, coresPerLlc: 2, threadsPerCore: 2 })
    expect(String(t)).toBe('2n4l2c2t (16 CPUs)')
  })

  it('keeps the last CPU back for the root cgroup when there are more than two', () => {
    expect(topologyFromSpec('1n2l2c1t').usableCpus()).toEqual([0, 1, 2])
    expect(topologyFromSpec('1n1l2c1t').usableCpus()).toEqual([0, 1])
  })

  it('splits usable CPUs: fractions, disjoint parts, overlapping parts', () => {
    const t = topologyFromSpec('1n2l4c1t') // 8 CPUs, usable 0-6
    expect(t.range(0, 0.5)).toEqual([0, 1, 2, 3])
    expect(t.range(0.5, 1)).toEqual([3, 4, 5, 6])
    expect(t.range(0, 0.01)).toEqual([0])
    expect(t.split(2)).toEqual([
      [0, 1, 2],
      [3, 4, 5, 6],
    ])
    expect(t.disjoint(1, 3)).toEqual([2, 3])
    const parts = t.split(3)
    expect(parts.flat()).toEqual(t.usableCpus())
    const o0 = t.overlap(0, 2, 0.5)
    const o1 = t.overlap(1, 2, 0.5)
    expect(o0.filter((c) => o1.includes(c)).length).toBeGreaterThan(0)
    expect([...new Set([...o0, ...o1])].sort((a, b) => a - b)).toEqual(t.usableCpus())
    expect(t.exact('1-2')).toEqual([1, 2])
  })

  it('refuses impossible requests with the topology in the message', () => {
    const t = topologyFromSpec('1n2l2c1t')
    expect(() => t.llc(2)).toThrow('no LLC 2: this guest has 2 (1n2l2c1t (4 CPUs))')
    expect(() => t.node(1)).toThrow(/no NUMA node 1: this guest has 1/)
    expect(() => t.disjoint(0, 5)).toThrow(/cannot split 3 usable CPUs into 5 parts/)
    expect(() => t.disjoint(2, 2)).toThrow(/bad cpuset split 2 of 2/)
    expect(() => t.range(0.5, 0.2)).toThrow(/bad cpuset range/)
    expect(() => t.exact([0, 9])).toThrow(/cpuset 0,9 is not within this guest's CPUs 0-3/)
  })
})

describe('topology from sysfs', () => {
  const dirs: string[] = []
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

  /** A fake /sys/devices/system as a 2-node, 4-LLC, SMT machine would show it (AMD-style distinct cache ids). */
  function fakeSysfs(spec: string): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-sysfs-'))
    dirs.push(root)
    const t = topologyFromSpec(spec)
    const w = (p: string, s: string) => {
      fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true })
      fs.writeFileSync(path.join(root, p), `${s}\n`)
    }
    w('cpu/online', formatCpuList(t.cpus))
    for (const c of t.cpus) {
      w(`cpu/cpu${c}/topology/thread_siblings_list`, formatCpuList(t.siblingsOf(c)))
      w(`cpu/cpu${c}/topology/package_cpus_list`, formatCpuList(t.cpus))
      w(`cpu/cpu${c}/cache/index0/level`, '1')
      w(`cpu/cpu${c}/cache/index0/type`, 'Data')
      w(`cpu/cpu${c}/cache/index0/shared_cpu_list`, formatCpuList(t.siblingsOf(c)))
      w(`cpu/cpu${c}/cache/index1/level`, '1')
      w(`cpu/cpu${c}/cache/index1/type`, 'Instruction')
      w(`cpu/cpu${c}/cache/index1/shared_cpu_list`, formatCpuList(t.siblingsOf(c)))
      w(`cpu/cpu${c}/cache/index3/level`, '3')
      w(`cpu/cpu${c}/cache/index3/type`, 'Unified')
      w(`cpu/cpu${c}/cache/index3/id`, String(c)) // meaningless per CPU, as on AMD-flavoured QEMU
      w(`cpu/cpu${c}/cache/index3/shared_cpu_list`, formatCpuList(t.llc(t.llcOf(c))))
    }
    t.nodes.forEach((n, i) => w(`node/node${i}/cpulist`, formatCpuList(n)))
    return root
  }

  it('reads LLCs from the last-level cache’s shared_cpu_list, SMT siblings and NUMA nodes', () => {
    const t = topologyFromSysfs(fakeSysfs('2n4l2c2t'))
    expect(t.spec).toEqual({ numaNodes: 2, llcs: 4, coresPerLlc: 2, threadsPerCore: 2 })
    expect(t.llc(3)).toEqual([12, 13, 14, 15])
    expect(t.siblingsOf(6)).toEqual([6, 7])
    expect(t.node(1)).toEqual([8, 9, 10, 11, 12, 13, 14, 15])
  })

  it('falls back to one node and the package when there is no NUMA or cache information', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-sysfs-'))
    dirs.push(root)
    fs.mkdirSync(path.join(root, 'cpu'), { recursive: true })
    fs.writeFileSync(path.join(root, 'cpu', 'online'), '0-2\n')
    const t = topologyFromSysfs(root)
    expect(t.cpus).toEqual([0, 1, 2])
    expect(t.nodes).toEqual([[0, 1, 2]])
    expect(t.llcs).toEqual([[0, 1, 2]])
    expect(t.cores).toEqual([[0], [1], [2]])
  })

  it('reads this machine', () => {
    const t = topologyFromSysfs()
    expect(t.numCpus).toBeGreaterThan(0)
    expect(t.llcs.flat().sort((a, b) => a - b)).toEqual([...t.cpus])
    expect(t.cores.flat().sort((a, b) => a - b)).toEqual([...t.cpus])
  })

  it('says when sysfs is missing', () => {
    expect(() => topologyFromSysfs('/nonexistent')).toThrow(/cannot read \/nonexistent\/cpu\/online: is sysfs mounted\?/)
  })
})
