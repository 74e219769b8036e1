/**
 * The test API in real guests: guest/suites.mjs runs scenarios inside a booted kernel (scx_simple on
 * 1n2l2c1t unless noted) and prints each report as JSON; here the host rehydrates the reports and
 * asserts with the same matchers a sched test uses. One boot per suite, run one after another.
 */
import path from 'node:path'
import { checkCpuset, type Report, registerMatchers, reportFromJSON, type WorkerTelemetry } from 'ktstr'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildWorkload } from '../../runtime/workloads/build-workload.js'
import { resolveKernel } from '../../src/kernel/resolve.js'
import { resolveScheduler } from '../../src/kernel/schedulers.js'
import { failure } from '../helpers/failure.js'
import { guestSkipReason, repoRoot, runCli } from '../helpers/guest.js'

registerMatchers(expect)

const SUITES = path.join(import.meta.dirname, 'guest', 'suites.mjs')

type Results = Map<string, unknown>

async function suite(name: string, vm: string[], extra: string[] = []): Promise<Results> {
  const r = await runCli(['exec', '--topology', '1n2l2c1t', ...vm, '--include', SUITES, '--', 'node', SUITES, name, ...extra], { timeoutMs: 300_000 })
  if (r.code !== 0) throw new Error(`guest suite ${name} exited ${r.code}:\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`)
  const out: Results = new Map()
  for (const line of r.stdout.split('\n')) {
    const m = /^KTSTR-RESULT (\S+) (.*)$/.exec(line)
    if (m) out.set(m[1]!, JSON.parse(m[2]!))
  }
  return out
}

const report = (res: Results, name: string): Report => {
  const v = res.get(name)
  if (!v) throw new Error(`guest printed no result "${name}" (got ${[...res.keys()].join(', ')})`)
  return reportFromJSON(v as never)
}

const summary = (r: Report) =>
  r.workers
    .map((w) => `${w.cgroup}/${w.pid} ${w.work}: ${w.workUnits} units, off-CPU ${w.offCpuPct.toFixed(1)}%, gap ${w.maxGapMs.toFixed(0)} ms, cpus ${w.cpusUsed.join(',')}`)
    .join('\n')

describe.skipIf(!!guestSkipReason)('test API in a guest', () => {
  beforeAll(() => {
    buildWorkload(repoRoot)
  })

  it('done criteria: fair spin cgroups, cpuset isolation, a starved SCHED_IDLE worker named in the failure', async () => {
    // The starvation part keeps a SCHED_IDLE worker off its CPU on purpose: the host's stall watchdog would end the run.
    const res = await suite('criteria', ['--scheduler', 'scx_simple', '--stall-ms', 'off'])
    expect(res.get('topology')).toMatchObject({
      topology: '1n2l2c1t (4 CPUs)',
      llcs: [
        [0, 1],
        [2, 3],
      ],
      scheduler: { name: 'scx_simple', attached: true },
    })

    // The test process ran as SCHED_FIFO during the run (so no worker can starve it) and is back after.
    expect(res.get('self-policy')).toEqual({ during: 1, after: 0 })
    const fair = report(res, 'fairness')
    console.log(
      `fairness (8 spinners on 4 CPUs, scx_simple):\n${summary(fair)}\nspread a ${fair.cgroup('a').offCpuSpreadPct.toFixed(1)}%, b ${fair.cgroup('b').offCpuSpreadPct.toFixed(1)}%`,
    )
    expect(fair.workers).toHaveLength(8)
    expect(fair).toKeepSchedulerAttached()
    expect(fair).toHaveNoStarvation()
    expect(fair.cgroup('a')).toBeFairWithin({ spreadPct: 15 })
    expect(fair.cgroup('b')).toBeFairWithin({ spreadPct: 15 })
    // Oversubscribed for real: everyone waited about half the time, on every CPU between them.
    for (const w of fair.workers) expect(w.offCpuPct).toBeGreaterThan(25)
    expect(fair.cgroup('a').cpusUsed.length + fair.cgroup('b').cpusUsed.length).toBeGreaterThanOrEqual(4)
    // The in-guest checks agreed.
    expect(res.get('fairness-checks')).toMatchObject({ a: { pass: true }, b: { pass: true }, starvation: { pass: true } })

    const iso = report(res, 'cpuset')
    console.log(`cpuset 0-1 vs free:\n${summary(iso)}`)
    expect(iso.cgroup('pinned')).toStayInCpuset()
    expect(iso.cgroup('pinned').cpusUsed.every((c) => c <= 1)).toBe(true)
    expect(iso.cgroup('pinned').cpuset).toEqual([0, 1])
    expect(iso.cgroup('free').cpusUsed.some((c) => c >= 2)).toBe(true)
    // Not vacuous: the same telemetry against a narrower cpuset fails and names the CPU.
    const narrowed = iso.cgroup('pinned').workers.map((w): WorkerTelemetry => ({ ...w, allowedCpus: [{ atMs: 0, cpus: [0] }] }))
    expect(failure(() => expect(narrowed).toStayInCpuset())).toMatch(/worker \d+ \(cgroup "pinned", spin\) ran on cpu1 at \+\d+ ms, outside its cpuset 0/)
    expect(res.get('cpuset-checks')).toMatchObject({ pinned: { pass: true } })

    const starve = report(res, 'starvation')
    console.log(`SCHED_IDLE under SCHED_FIFO on cpu1:\n${summary(starve)}`)
    const victim = starve.cgroup('starve').workers[0]!
    expect(victim.policy).toBe('idle')
    expect(starve.cgroup('hog').workers[0]!.policy).toBe('fifo')
    expect(starve.cgroup('hog').workUnits).toBeGreaterThan(0)
    expect(starve.cgroup('bystander')).toHaveNoStarvation()
    const msg = failure(() => expect(starve).toHaveNoStarvation())
    console.log(msg)
    expect(msg).toContain(`worker ${victim.pid} (cgroup "starve", spin, policy idle)`)
    expect(msg).toMatch(/(starved: 0 work units|stuck \d+ ms on cpu1 at \+\d+ ms)/)
    expect(msg).not.toMatch(/cgroup "(hog|bystander)"/)
    const gapMsg = failure(() => expect(starve).toHaveMaxGapBelow(1000))
    expect(gapMsg).toMatch(new RegExp(`worker ${victim.pid} \\(cgroup "starve", spin, policy idle\\) stuck \\d+ ms on cpu1 at \\+\\d+ ms \\(limit 1000 ms\\)`))
    // The in-guest checks named the same worker.
    const checks = res.get('starvation-checks') as { starvation: { pass: boolean; failures: string[] } }
    expect(checks.starvation.pass).toBe(false)
    expect(checks.starvation.failures.join('\n')).toContain(`worker ${victim.pid} (cgroup "starve"`)
  }, 300_000)

  it('every work type does its job inside cgroups, and 64 workers fit in a 1 GiB guest', async () => {
    // No stall watchdog: niceSweep passes through nice 19 and policyChurn through SCHED_IDLE, weight 1
    // to scx_simple's weighted vtime against 100 for nice 0, so a full slice there costs 100 slices of
    // vtime, and such a worker can rightly wait past 2 s (a CI run's watchdog named one at 2.0 s).
    const res = await suite('worktypes', ['--scheduler', 'scx_simple', '--memory', '1024', '--stall-ms', 'off'])
    const r = report(res, 'worktypes')
    console.log(`work types in cgroups:\n${summary(r)}`)
    const c = (name: string) => r.cgroup(name).workers
    for (const w of r.workers) {
      expect(w.cgroup).toBe(w.finalCgroup)
      expect(w.workUnits, `${w.cgroup} worked`).toBeGreaterThan(0)
    }
    expect(r).toStayInCpuset()
    expect(r).toKeepSchedulerAttached()
    for (const w of c('yield')) expect(w.counters.yields).toBe(w.workUnits)
    for (const w of c('mixed')) expect(w.counters.yields).toBe(w.iterations)
    for (const w of c('ioSync')) expect(w.counters.bytesWritten).toBe(w.iterations * 65536)
    for (const w of c('bursty')) {
      expect(w.counters.bursts).toBeGreaterThan(3)
      expect(w.wakeSamples).toBeGreaterThan(0)
      expect(w.offCpuPct).toBeGreaterThan(40) // asleep 100 of every 150 ms
    }
    for (const pair of [c('pipe'), c('futex')]) {
      expect(pair[0]!.counters.partnerPid).toBe(pair[1]!.pid)
      expect(pair[1]!.counters.partnerPid).toBe(pair[0]!.pid)
      expect(pair[0]!.counters.exchanges).toBeGreaterThan(10)
      expect(Math.abs(pair[0]!.counters.exchanges! - pair[1]!.counters.exchanges!)).toBeLessThanOrEqual(1)
      expect(pair[0]!.wakeSamples + pair[1]!.wakeSamples).toBeGreaterThan(0)
    }
    for (const w of c('cache')) expect(w.workUnits).toBe(w.counters.passes! * 512)
    const forks = c('forkExit').reduce((n, w) => n + w.counters.forks!, 0)
    expect(forks).toBeGreaterThan(10)
    expect((res.get('worktypes-facts') as { processesDelta: number }).processesDelta).toBeGreaterThanOrEqual(forks)
    for (const w of c('niceSweep')) {
      expect(w.counters.niceChanges).toBeGreaterThan(0)
      expect(w.counters.niceMin).toBe(-20)
    }
    for (const w of c('affinityChurn')) {
      expect(w.counters.affinityChanges).toBeGreaterThan(5)
      expect(w.cpusUsed.length).toBeGreaterThan(1)
    }
    for (const w of c('policyChurn')) {
      expect(w.counters.policyErrors).toBe(0)
      for (const p of ['other', 'batch', 'idle', 'fifo', 'rr']) expect(w.counters[p], p).toBeGreaterThan(0)
    }

    const big = report(res, 'sixty-four')
    const mem = res.get('sixty-four-memory') as { memTotalKb: number; memAvailableBeforeKb: number; memAvailableMinKb: number }
    console.log(`64 workers: memory ${JSON.stringify(mem)}, worst gap ${Math.max(...big.workers.map((w) => w.maxGapMs)).toFixed(0)} ms`)
    expect(big.workers).toHaveLength(64)
    expect(big.workers.every((w) => w.workUnits > 0)).toBe(true)
    expect(mem.memTotalKb).toBeLessThan(1024 * 1024)
    expect(mem.memAvailableMinKb).toBeGreaterThan(mem.memTotalKb / 4)
  }, 300_000)

  it('runs ktstr’s 14 canned scenarios and every op', async () => {
    const res = await suite('scenarios', ['--scheduler', 'scx_simple'])
    const s = (n: string) => report(res, `scenario-${n}`)
    expect(res.get('scenario-skips')).toEqual({})
    for (const n of [
      'steady',
      'steadyLlc',
      'oversubscribed',
      'cpusetApply',
      'cpusetClear',
      'cpusetResize',
      'cgroupAdd',
      'cgroupRemove',
      'affinityChange',
      'affinityPinned',
      'hostContention',
      'mixedWorkloads',
      'nestedSteady',
      'nestedTaskMove',
    ]) {
      const r = s(n)
      expect(r, n).toKeepSchedulerAttached()
      if (!checkCpuset(r).pass) console.log(n, JSON.stringify(r.workers.map((w) => [w.pid, w.allowedCpus, w.cpuSeen, w.migrationEvents])), JSON.stringify(r.steps))
      expect(r, n).toStayInCpuset()
      expect(
        r.workers.every((w) => w.workUnits > 0),
        n,
      ).toBe(true)
    }
    expect(s('steady')).toHaveNoStarvation()
    expect(
      s('steadyLlc')
        .cgroup('cg_0')
        .cpusUsed.every((c) => c <= 1),
    ).toBe(true)
    expect(
      s('steadyLlc')
        .cgroup('cg_1')
        .cpusUsed.every((c) => c >= 2),
    ).toBe(true)
    expect(s('steadyLlc').cgroup('cg_1').cpuset).toEqual([2, 3])
    expect(s('oversubscribed').workers).toHaveLength(64)
    // cpuset_apply: unrestricted first, then disjoint halves of the usable CPUs (0-2).
    const apply = s('cpusetApply')
      .cgroup('cg_0')
      .workers[0]!.allowedCpus.map((e) => e.cpus)
    expect(apply).toEqual([[0, 1, 2, 3], [0]])
    expect(
      s('cpusetClear')
        .cgroup('cg_1')
        .workers[0]!.allowedCpus.map((e) => e.cpus),
    ).toEqual([
      [1, 2],
      [0, 1, 2, 3],
    ])
    expect(s('cpusetResize').cgroup('cg_0').workers[0]!.allowedCpus.length).toBe(3)
    const add = s('cgroupAdd')
    expect(add.cgroup('cg_2').workers[0]!.startedAtMs).toBeGreaterThan(500)
    const remove = s('cgroupRemove')
    expect(remove.cgroup('cg_3').workers[0]!.stoppedAtMs).toBeLessThan(remove.cgroup('cg_0').workers[0]!.stoppedAtMs - 300)
    expect(s('affinityChange').workers.every((w) => w.affinity && w.affinity.length >= 1)).toBe(true)
    expect(s('affinityPinned').workers.every((w) => w.cpusUsed.every((c) => c <= 1))).toBe(true)
    expect(s('hostContention').cgroup('/').workers).toHaveLength(4)
    expect(s('mixedWorkloads').cgroupNames).toEqual(['cg_heavy', 'cg_bursty', 'cg_io'])
    expect(s('nestedSteady').cgroupNames).toEqual(['cg_0/sub_a', 'cg_0/sub_b', 'cg_1/sub_b', 'cg_1/sub_a/deep'])
    expect(s('nestedTaskMove').workers.map((w) => w.finalCgroup)).toEqual(['cg_1', 'cg_1'])

    const ops = report(res, 'ops')
    console.log(`ops run:\n${summary(ops)}\nsteps ${JSON.stringify(ops.steps)}`)
    expect(ops).toStayInCpuset()
    expect(ops.steps).toHaveLength(8)
    const a0 = ops.cgroup('a').workers[0]!
    expect(a0.allowedCpus.map((e) => e.cpus)).toEqual([[0, 1, 2, 3], [0], [1, 2], [0, 1, 2, 3]])
    const stepAt = (i: number) => ops.steps[i]!.atMs
    // op.stop('b') in step 5: b stopped then, not at the end.
    for (const w of ops.cgroup('b').workers) {
      expect(w.stoppedAtMs).toBeGreaterThanOrEqual(stepAt(5))
      expect(w.stoppedAtMs).toBeLessThan(stepAt(6))
    }
    expect(ops.cgroup('b').workers.map((w) => w.affinity?.length)).toEqual([1, 1])
    expect(ops.cgroup('c').workers.map((w) => w.finalCgroup)).toEqual(['a', 'a'])
    expect(ops.cgroup('a').workers.filter((w) => w.workType === 'bursty')).toHaveLength(2)
    // A step's own cgroup lives for that step only.
    for (const w of ops.cgroup('stepwise').workers) {
      expect(w.startedAtMs).toBeGreaterThanOrEqual(stepAt(6))
      expect(w.stoppedAtMs).toBeLessThanOrEqual(stepAt(7) + 50)
    }
  }, 300_000)

  it('without a host scheduler: EEVDF, an A/B against it, and a scheduler killed mid-run is reported with its exit reason', async () => {
    // The kernel's own scx_simple, by host path: the suite passes it to ab() and run() as a binary.
    const scxSimple = resolveScheduler(await resolveKernel(), 'scx_simple').path
    const res = await suite('lifecycle', ['--include', scxSimple], [scxSimple])
    expect(res.get('eevdf-now')).toEqual({ name: 'eevdf', kind: 'eevdf', attached: false, attachedAtStart: false })
    const eevdf = report(res, 'eevdf-run')
    expect(eevdf.scheduler.kind).toBe('eevdf')
    expect(eevdf).toHaveNoStarvation()
    expect(failure(() => expect(eevdf).toKeepSchedulerAttached())).toContain('no sched_ext scheduler was attached (the run used EEVDF)')

    const ab = res.get('ab') as {
      scheduler: string
      baseline: number
      candidate: number
      ratio: number
      baselineScheduler: { kind: string }
      candidateScheduler: { name: string; attached: boolean }
      after: { kind: string }
    }
    console.log(`A/B spin work units, EEVDF vs scx_simple: ${JSON.stringify(ab)}`)
    expect(ab.scheduler).toBe('scx_simple')
    expect(ab.baselineScheduler.kind).toBe('eevdf')
    expect(ab.candidateScheduler).toMatchObject({ name: 'scx_simple', attached: true })
    expect(ab.after.kind).toBe('eevdf')
    expect(ab.baseline).toBeGreaterThan(0)
    expect(ab.ratio).toBeCloseTo(ab.candidate / ab.baseline, 6)

    const killed = report(res, 'killed')
    console.log(`scheduler killed at ~700 ms: ${JSON.stringify(killed.scheduler)}`)
    expect(killed.scheduler).toMatchObject({ name: 'scx_simple', kind: 'sched_ext', attached: false, attachedAtStart: true })
    expect(killed.scheduler.detachedAtMs).toBeGreaterThan(400)
    expect(killed.scheduler.detachedAtMs).toBeLessThan(1500)
    const msg = failure(() => expect(killed).toKeepSchedulerAttached())
    expect(msg).toMatch(/scheduler scx_simple detached at \+\d+ ms: sched_ext: BPF scheduler "simple" disabled \(unregistered from user space\)/)
    expect(killed).toHaveNoStarvation()
  }, 300_000)
})
