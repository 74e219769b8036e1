import { cgroup, describeWork, formatCpuList, op, parseCpuList, parseDuration, run, scenarios, skipReason, step, topologyFromSpec, WORK_TYPES, work } from 'ktstr'
import { describe, expect, it } from 'vitest'
import { DEFAULT_DURATION_MS, describeOp, holdMs, runLengthMs } from '../../runtime/api/steps.js'

describe('durations', () => {
  it('takes milliseconds or unit strings', () => {
    expect(parseDuration(1500)).toBe(1500)
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('2s')).toBe(2000)
    expect(parseDuration('1.5s')).toBe(1500)
    expect(parseDuration('1m')).toBe(60_000)
  })

  it('rejects anything else with the accepted forms', () => {
    for (const bad of ['2x', '', '-1s', 'two seconds']) {
      expect(() => parseDuration(bad)).toThrow(/bad duration .*: use milliseconds \(e\.g\. 1500\) or a string like '500ms', '2s', '1m'/)
    }
    expect(() => parseDuration(-5)).toThrow(/bad duration -5/)
    expect(() => parseDuration(Number.NaN)).toThrow(/bad duration/)
  })
})

describe('cpu lists', () => {
  it('round-trips Linux cpulist notation', () => {
    expect(parseCpuList('0-3,8,10-11')).toEqual([0, 1, 2, 3, 8, 10, 11])
    expect(parseCpuList('')).toEqual([])
    expect(formatCpuList([5, 0, 1, 2, 2])).toBe('0-2,5')
    expect(() => parseCpuList('3-1')).toThrow(/range 3-1 runs backwards/)
    expect(() => parseCpuList('a')).toThrow(/bad CPU list "a"/)
  })
})

describe('work types', () => {
  it('has one constructor per work type, each with ktstr’s defaults', () => {
    const made = [
      work.spin(),
      work.yield(),
      work.mixed(),
      work.ioSync(),
      work.bursty(),
      work.pipe(),
      work.futex(),
      work.cache(),
      work.forkExit(),
      work.niceSweep(),
      work.affinityChurn(),
      work.policyChurn(),
    ]
    expect(made.map((w) => w.type)).toEqual([...WORK_TYPES])
    expect(work.bursty()).toMatchObject({ burstMs: 50, sleepMs: 100 })
    expect(work.cache()).toMatchObject({ sizeKb: 32, stride: 64 })
    expect(Object.isFrozen(work.spin())).toBe(true)
  })

  it('takes policy, priority and nice, and checks them', () => {
    expect(work.spin({ policy: 'fifo', priority: 50 })).toMatchObject({ type: 'spin', policy: 'fifo', priority: 50 })
    expect(describeWork(work.spin({ policy: 'idle' }))).toBe('spin, policy idle')
    expect(describeWork(work.pipe({ policy: 'rr', priority: 3, nice: 1 }))).toBe('pipe, rr 3, nice 1')
    expect(() => work.spin({ policy: 'other', priority: 5 })).toThrow("work.spin(): priority applies to policy 'fifo' or 'rr' only")
    expect(() => work.spin({ policy: 'fifo', priority: 100 })).toThrow(/RT priority must be 1\.\.99, got 100/)
    expect(() => work.ioSync({ nice: 20 })).toThrow(/work\.ioSync\(\): nice must be -20\.\.19, got 20/)
    expect(() => work.spin({ policy: 'deadline' as never })).toThrow(/unknown policy "deadline"/)
    expect(() => work.cache({ sizeKb: 0 })).toThrow(/sizeKb must be a whole number >= 1, got 0/)
    expect(() => work.bursty({ burstMs: 1.5 })).toThrow(/burstMs must be a whole number/)
  })
})

describe('cgroups', () => {
  it('builds immutably and chains', () => {
    const base = cgroup('a')
    const a = base.workers(2, work.spin()).cpuset('0-1').workers(2, work.yield(), { affinity: 'single-cpu' })
    expect(base.groups).toEqual([])
    expect(a.name).toBe('a')
    expect(a.workerCount).toBe(4)
    expect(a.cpusetInput).toBe('0-1')
    expect(a.groups[1]).toMatchObject({ count: 2, affinity: 'single-cpu' })
    expect(cgroup('a').workers(3).groups[0]!.work.type).toBe('spin')
  })

  it('validates names and counts with a fix in the message', () => {
    expect(() => cgroup('')).toThrow(/bad cgroup name ""/)
    expect(() => cgroup('/a')).toThrow(/bad cgroup name "\/a"/)
    expect(() => cgroup('a/../b')).toThrow(/bad cgroup name/)
    expect(cgroup('cg_0/sub_a').name).toBe('cg_0/sub_a')
    expect(() => cgroup('a').workers(0)).toThrow(/workers\(n\) needs a whole number >= 1, got 0/)
    expect(() => cgroup('p').workers(3, work.pipe())).toThrow('cgroup "p": pipe workers run in pairs; give an even number of workers (got 3)')
    expect(() => op.spawn('p', 1, work.futex())).toThrow(/futex workers run in pairs/)
  })
})

describe('steps', () => {
  it('resolves fixed holds and shares of the run', () => {
    expect(holdMs('250ms', undefined)).toBe(250)
    expect(holdMs(300, undefined)).toBe(300)
    expect(holdMs('25%', 4000)).toBe(1000)
    expect(holdMs({ frac: 0.5 }, 3000)).toBe(1500)
    expect(() => holdMs('50%', undefined)).toThrow(/is a share of the run; give run\(\{ duration \}\) too/)
    expect(() => holdMs('150%', 1000)).toThrow(/a share must be within 0\.\.100%/)
  })

  it('runs for the duration asked, the steps end to end, or the default', () => {
    // A 1 s run is 1 s, not the 2 s default (it was, before: a max with the default).
    expect(runLengthMs(1000, [])).toBe(1000)
    expect(runLengthMs(5000, [])).toBe(5000)
    expect(runLengthMs(undefined, [])).toBe(DEFAULT_DURATION_MS)
    expect(runLengthMs(undefined, [300, 200])).toBe(500)
    // Steps that hold longer than the duration stretch the run.
    expect(runLengthMs(400, [300, 200])).toBe(500)
    expect(runLengthMs(1000, [300, 200])).toBe(1000)
  })

  it('makes ops that say what they do', () => {
    const s = step('1s', op.setCpuset('a', '0'), op.moveTasks('a', 'b'), op.spawnHost('per-cpu'), op.swapCpusets('a', 'b'))
    expect(s.ops!.map(describeOp)).toEqual(['set cpuset of a', 'move tasks a -> b', 'spawn one per CPU spin host workers', 'swap cpusets of a and b'])
    expect(() => op.removeCgroup('bad name')).toThrow(/bad cgroup name/)
  })
})

describe('canned scenarios', () => {
  it('has ktstr’s 14, each a plan with a name and cgroups', () => {
    const names = Object.keys(scenarios)
    expect(names).toHaveLength(14)
    for (const n of names) {
      const plan = scenarios[n as keyof typeof scenarios]({ duration: '1s' })
      expect(plan.name, n).toMatch(/^[a-z_]+$/)
      expect(plan.cgroups?.length, n).toBeGreaterThan(0)
      expect(plan.duration).toBe('1s')
    }
    expect(scenarios.oversubscribed().cgroups!.map((c) => c.workerCount)).toEqual([32, 32])
    expect(scenarios.steady({ workers: 4 }).cgroups!.map((c) => c.workerCount)).toEqual([4, 4])
  })

  it('says when the topology cannot hold a scenario', () => {
    expect(skipReason(scenarios.steadyLlc(), topologyFromSpec('1n1l4c1t'))).toBe('scenario steady_llc needs at least 2 LLCs; this guest has 1 (1n1l4c1t (4 CPUs))')
    expect(skipReason(scenarios.steadyLlc(), topologyFromSpec('1n2l2c1t'))).toBeUndefined()
  })

  it('computes topology-dependent cpusets when run', () => {
    const t = topologyFromSpec('1n2l2c1t')
    const [a, b] = scenarios.steadyLlc().cgroups!
    expect((a!.cpusetInput as (t: unknown) => number[])(t)).toEqual([0, 1])
    expect((b!.cpusetInput as (t: unknown) => number[])(t)).toEqual([2, 3])
  })
})

describe('run() outside a guest', () => {
  it('says what is missing when cgroup v2 is not there', async () => {
    const fs = await import('node:fs')
    const os = await import('node:os')
    const path = await import('node:path')
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-nocg-'))
    const old = process.env.KTSTR_CGROUP_ROOT
    process.env.KTSTR_CGROUP_ROOT = empty
    try {
      await expect(run({ duration: 10, cgroups: [cgroup('a').workers(1)] })).rejects.toThrow(
        `cgroup v2 is not mounted at ${empty} (no cgroup.controllers); run the test inside a ktstr guest, or mount cgroup2 there`,
      )
      fs.writeFileSync(path.join(empty, 'cgroup.controllers'), 'memory pids\n')
      await expect(run({ duration: 10 })).rejects.toThrow(/lacks the cpuset and cpu controller\(s\); build the guest kernel with CONFIG_CPUSETS=y and CONFIG_CGROUP_SCHED=y/)
    } finally {
      if (old === undefined) delete process.env.KTSTR_CGROUP_ROOT
      else process.env.KTSTR_CGROUP_ROOT = old
      fs.rmSync(empty, { recursive: true, force: true })
    }
  })

  it('refuses a scenario the topology cannot hold before touching anything', async () => {
    await expect(run({ ...scenarios.steadyLlc(), topology: topologyFromSpec('1n1l2c1t') })).rejects.toThrow(/scenario steady_llc needs at least 2 LLCs; this guest has 1/)
  })
})
