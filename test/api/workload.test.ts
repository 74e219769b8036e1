/**
 * The workload program (runtime/workloads/ktstr-workload.c) run directly on this Linux host: each work
 * type shows from its own telemetry that it does what it says. No cgroups here (the host may not
 * have cgroup v2); those run in a guest (guest.test.ts).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type WorkSpec, work } from '../../runtime/api/work.js'
import { monotonicNs, type RawWorkloadReport, setAffinity, setScheduler, type WorkloadArgs, WorkloadProcess, workloadArgv } from '../../runtime/api/workload-process.js'
import { buildWorkload } from '../../runtime/workloads/build-workload.js'
import { repoRoot } from '../helpers/repo.js'

const hasCc = ['cc', 'gcc'].some((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0)
const skipReason = !hasCc ? 'no C compiler (apt-get install gcc)' : process.platform !== 'linux' ? 'not Linux' : undefined
if (skipReason) console.warn(`[ktstr tests] skipping workload-program tests: ${skipReason}`)

let binary: string
let dir: string
beforeAll(() => {
  if (skipReason) return
  binary = buildWorkload(repoRoot)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-workload-'))
})
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

const hostCpus = os.availableParallelism()
let seq = 0

/** Run workloads together for `ms`; paired types get partners automatically. */
async function runWorkloads(specs: (WorkSpec | (Omit<WorkloadArgs, 'pair'> & { work: WorkSpec }))[], ms = 400, t0Offset = 0): Promise<RawWorkloadReport[]> {
  const procs: WorkloadProcess[] = []
  for (const s of specs) {
    const args: WorkloadArgs = 'type' in s ? { work: s } : { ...s }
    const paired = args.work.type === 'pipe' || args.work.type === 'futex'
    const pairPath = path.join(dir, `pair-${seq++}`)
    for (let role = 0; role < (paired ? 2 : 1); role++) {
      procs.push(new WorkloadProcess(`${args.work.type} workload`, { maxMs: ms + 30_000, ...args, ...(paired ? { pair: { path: pairPath, role: role as 0 | 1 } } : {}) }, binary))
    }
  }
  try {
    await Promise.all(procs.map((p) => p.setup()))
    const t0 = monotonicNs() - t0Offset * 1e6
    for (const p of procs) p.go(t0)
    await new Promise((r) => setTimeout(r, ms))
    const at = monotonicNs()
    return await Promise.all(procs.map((p) => p.stop(at)))
  } finally {
    await Promise.all(procs.map((p) => p.kill()))
  }
}

function procStatProcesses(): number {
  return Number(/^processes (\d+)/m.exec(fs.readFileSync('/proc/stat', 'utf8'))![1])
}

describe.skipIf(!!skipReason)('ktstr-workload on the host', () => {
  it('builds the argument list from a work spec', () => {
    expect(workloadArgv({ work: work.bursty({ burstMs: 5, sleepMs: 7, policy: 'batch', nice: 3 }), affinity: [0, 2], maxMs: 10.2 })).toEqual([
      'run',
      '--type',
      'bursty',
      '--policy',
      'batch',
      '--nice',
      '3',
      '--burst-ms',
      '5',
      '--sleep-ms',
      '7',
      '--affinity',
      '0,2',
      '--max-ms',
      '11',
      '--parent',
      String(process.pid),
    ])
  })

  it('lists the twelve work types', () => {
    const out = spawnSync(binary, ['types'], { encoding: 'utf8' }).stdout.trim().split('\n')
    expect(out).toEqual(['spin', 'yield', 'mixed', 'io-sync', 'bursty', 'pipe', 'futex', 'cache', 'fork-exit', 'nice-sweep', 'affinity-churn', 'policy-churn'])
  })

  it('spin: counts 1024 units per checkpoint, burns CPU, and schedstat agrees with its own CPU clock', async () => {
    const [r] = await runWorkloads([work.spin()])
    expect(r!.workUnits).toBeGreaterThan(0)
    expect(r!.workUnits).toBe(r!.iterations * 1024)
    expect(r!.cpuTimeNs).toBeGreaterThan(20e6)
    expect(r!.schedstat).toBe(true)
    // Two views of the same on-CPU time: CLOCK_PROCESS_CPUTIME_ID and /proc/self/schedstat.
    expect(Math.abs(r!.schedCpuTimeNs - r!.cpuTimeNs)).toBeLessThan(0.1 * r!.cpuTimeNs + 2e6)
    expect(r!.cpuTimeNs + r!.runDelayNs).toBeLessThanOrEqual(r!.wallTimeNs * 1.05 + 5e6)
    expect(r!.wallTimeNs).toBeGreaterThanOrEqual(380e6)
    expect(r!.cpus.length).toBeGreaterThan(0)
  })

  it('yield: every unit is a sched_yield, and next to a spinner on the same CPU each one gives the CPU away', async () => {
    const [y, s] = await runWorkloads(
      [
        { work: work.yield(), affinity: [0] },
        { work: work.spin(), affinity: [0] },
      ],
      500,
    )
    expect(y!.counters.yields).toBe(y!.workUnits)
    expect(y!.workUnits).toBe(y!.iterations)
    expect(y!.workUnits).toBeGreaterThan(3)
    // With a runnable competitor many yields become context switches (EEVDF may keep the yielder
    // when the other task is not yet eligible), and the spinner gets most of the CPU.
    expect(y!.timeslices).toBeGreaterThanOrEqual(y!.counters.yields! * 0.2)
    expect(s!.cpuTimeNs).toBeGreaterThan(1.5 * y!.cpuTimeNs)
    expect(y!.cpus.map(([c]) => c)).toEqual([0])
  })

  it('mixed: one yield per 1024 spins', async () => {
    const [r] = await runWorkloads([work.mixed()])
    expect(r!.counters.yields).toBe(r!.iterations)
    expect(r!.workUnits).toBe(r!.iterations * 1024)
    expect(r!.iterations).toBeGreaterThan(0)
  })

  it('io-sync: writes 64 KiB and syncs each iteration, sleeping 100 µs between, and removes its file', async () => {
    const ioDir = fs.mkdtempSync(path.join(dir, 'io-'))
    const [r] = await runWorkloads([work.ioSync({ path: ioDir })])
    expect(r!.iterations).toBeGreaterThan(0)
    expect(r!.counters.bytesWritten).toBe(r!.iterations * 64 * 1024)
    expect(r!.counters.syncs).toBe(r!.iterations)
    expect(r!.counters.sleeps).toBe(r!.iterations)
    expect(r!.workUnits).toBe(r!.iterations * 16)
    expect(r!.wakeSamples).toBeGreaterThan(0)
    expect(fs.readdirSync(ioDir)).toEqual([])
  })

  it('io-sync: on a device-like target it writes only its own region (offset per workload)', async () => {
    const dev = path.join(dir, 'disk.img')
    fs.writeFileSync(dev, Buffer.alloc(4 << 20))
    const region = 16 * 64 * 1024
    const [r] = await runWorkloads([{ work: work.ioSync({ path: dev }), ioOffset: region }], 200)
    expect(r!.counters.bytesWritten).toBeGreaterThan(0)
    const img = fs.readFileSync(dev)
    expect(img.subarray(0, region).every((b) => b === 0)).toBe(true)
    expect(img[region]).toBe(0xa5)
    expect(img.subarray(2 * region).every((b) => b === 0)).toBe(true)
  })

  it('bursty: alternates CPU bursts and sleeps; the sleeps count as wake-ups, not as gaps', async () => {
    const [r] = await runWorkloads([work.bursty({ burstMs: 10, sleepMs: 40 })], 600)
    expect(r!.counters.bursts).toBeGreaterThanOrEqual(4)
    expect(r!.counters.sleeps).toBeGreaterThanOrEqual(r!.counters.bursts! - 1)
    // Each finished sleep is a wake-up sample; one cut short by the stop signal is not.
    expect(r!.wakeSamples).toBeGreaterThanOrEqual(r!.counters.sleeps! - 1)
    expect(r!.wakeSamples).toBeLessThanOrEqual(r!.counters.sleeps!)
    // Mostly asleep: at most about 10/(10+40) of the wall time on CPU, allowing for load.
    expect(r!.cpuTimeNs).toBeLessThan(0.6 * r!.wallTimeNs)
    expect(r!.cpuTimeNs).toBeGreaterThan(0)
  })

  it('pipe: partners exchange timestamps over FIFOs, know each other, and sample wake latency', async () => {
    const [a, b] = await runWorkloads([work.pipe()])
    expect(a!.counters.partnerPid).toBe(b!.pid)
    expect(b!.counters.partnerPid).toBe(a!.pid)
    expect(a!.counters.exchanges).toBeGreaterThan(10)
    expect(Math.abs(a!.counters.exchanges! - b!.counters.exchanges!)).toBeLessThanOrEqual(1)
    expect(a!.wakeSamples + b!.wakeSamples).toBeGreaterThan(0)
    expect(a!.wakeLatencyNs.length).toBeLessThanOrEqual(256)
  })

  it('futex: partners hand the turn back and forth', async () => {
    const [a, b] = await runWorkloads([work.futex()])
    expect(a!.counters.partnerPid).toBe(b!.pid)
    expect(b!.counters.partnerPid).toBe(a!.pid)
    expect(a!.counters.exchanges).toBeGreaterThan(10)
    expect(Math.abs(a!.counters.exchanges! - b!.counters.exchanges!)).toBeLessThanOrEqual(1)
    expect(a!.wakeSamples + b!.wakeSamples).toBeGreaterThan(0)
  })

  it('cache: touches every stride of its buffer each pass, and the buffer is resident', async () => {
    const [r] = await runWorkloads([work.cache({ sizeKb: 4096, stride: 64 })])
    expect(r!.counters.passes).toBeGreaterThan(0)
    expect(r!.workUnits).toBe(r!.counters.passes! * ((4096 * 1024) / 64))
    expect(r!.counters.rssKb).toBeGreaterThanOrEqual(4096)
  })

  it('fork-exit: forks and reaps children, which the kernel counts too', async () => {
    const before = procStatProcesses()
    const [r] = await runWorkloads([work.forkExit()])
    const after = procStatProcesses()
    expect(r!.counters.forks).toBeGreaterThan(10)
    expect(r!.counters.forkFailures).toBe(0)
    expect(r!.counters.forks).toBe(r!.workUnits)
    // /proc/stat "processes" counts every fork on the machine since boot.
    expect(after - before).toBeGreaterThanOrEqual(r!.counters.forks!)
    expect(r!.counters.lastChildPid).not.toBe(r!.counters.firstChildPid)
  })

  it('nice-sweep: walks its nice value across -20..19, checked with getpriority', async () => {
    const [r] = await runWorkloads([work.niceSweep()], 500)
    expect(r!.counters.niceChanges).toBeGreaterThan(40)
    expect(r!.counters.niceErrors).toBe(0)
    expect(r!.counters.niceMin).toBe(-20)
    expect(r!.counters.niceMax).toBe(19)
  })

  it.skipIf(hostCpus < 2)('affinity-churn: hops between CPUs and lands on the one it asked for', async () => {
    const [r] = await runWorkloads([work.affinityChurn()])
    expect(r!.counters.affinityChanges).toBeGreaterThan(10)
    expect(r!.counters.affinityHits).toBeGreaterThanOrEqual(0.9 * r!.counters.affinityChanges!)
    expect(r!.cpus.length).toBeGreaterThanOrEqual(2)
    expect(r!.migrations).toBeGreaterThan(0)
  })

  it('policy-churn: cycles OTHER, BATCH, IDLE, FIFO and RR, each confirmed with sched_getscheduler', async () => {
    const [r] = await runWorkloads([work.policyChurn()], 300)
    expect(r!.counters.policyErrors).toBe(0)
    for (const p of ['other', 'batch', 'idle', 'fifo', 'rr']) expect(r!.counters[p], p).toBeGreaterThan(0)
    expect(r!.counters.policyChanges).toBe(r!.iterations)
  })

  it('applies the policy and nice it was given before starting', async () => {
    const [batch, idle, fifo] = await runWorkloads(
      [work.spin({ policy: 'batch', nice: 5 }), work.spin({ policy: 'idle' }), work.bursty({ policy: 'fifo', priority: 10, burstMs: 1, sleepMs: 20 })],
      200,
    )
    expect([batch!.policy, batch!.nice]).toEqual(['batch', 5])
    expect(idle!.policy).toBe('idle')
    expect(fifo!.policy).toBe('fifo')
  })

  it('measures its first gap from the parent’s go time, so a late start counts', async () => {
    const [r] = await runWorkloads([work.spin()], 100, 300)
    expect(r!.maxGapNs).toBeGreaterThanOrEqual(300e6)
    expect(r!.maxGapAtNs).toBe(0)
    expect(r!.wallTimeNs).toBeGreaterThanOrEqual(390e6)
  })

  it('stops by itself at its deadline and still reports', async () => {
    const [r] = await runWorkloads([{ work: work.spin(), maxMs: 150 }], 400)
    expect(r!.stoppedBy).toBe('deadline')
    expect(r!.wallTimeNs).toBeGreaterThanOrEqual(140e6)
    expect(r!.wallTimeNs).toBeLessThan(390e6)
  })

  it.skipIf(hostCpus < 2)('setaffinity helper moves a running workload', async () => {
    const p = new WorkloadProcess('spin workload', { work: work.spin(), maxMs: 10_000 }, binary)
    try {
      await p.setup()
      setAffinity(p.pid, [1], binary)
      const status = fs.readFileSync(`/proc/${p.pid}/status`, 'utf8')
      expect(/Cpus_allowed_list:\s*(\S+)/.exec(status)![1]).toBe('1')
    } finally {
      await p.kill()
    }
  })

  it('setscheduler helper sets another thread’s policy and reports the previous one', async () => {
    const p = new WorkloadProcess('spin workload', { work: work.spin(), maxMs: 10_000 }, binary)
    const policyOf = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[38])
    try {
      await p.setup() // blocked on stdin: safe to make it real-time
      expect(setScheduler(p.pid, 'fifo', 10, binary)).toEqual({ policy: 'other', priority: 0 })
      expect(policyOf(p.pid)).toBe(1) // SCHED_FIFO
      expect(setScheduler(p.pid, 'other', 0, binary)).toEqual({ policy: 'fifo', priority: 10 })
      expect(policyOf(p.pid)).toBe(0)
      expect(() => setScheduler(p.pid, 'fifo', 100, binary)).toThrow(
        /setting the scheduling policy of \d+ to fifo 100 failed: sched_setscheduler\(\d+, fifo 100\): Invalid argument/,
      )
    } finally {
      await p.kill()
    }
  })

  it('the build names the package to install when there is no C compiler', () => {
    const script = path.join(repoRoot, 'dist', 'runtime', 'workloads', 'build-workload.js')
    const r = spawnSync(process.execPath, [script, '--force'], { encoding: 'utf8', env: { PATH: '/nonexistent' } })
    expect(r.status).toBe(1)
    expect(r.stderr).toBe('ktstr build: no C compiler to build runtime/workloads/ktstr-workload.c (tried $CC, cc, gcc); install one: apt-get install gcc\n')
  })

  it('a workload that cannot apply its setup says why', async () => {
    const p = new WorkloadProcess('worker 7 (cgroup "a", spin)', { work: work.spin(), affinity: [hostCpus + 5], maxMs: 10_000 }, binary)
    try {
      await expect(p.setup()).rejects.toThrow(/worker 7 \(cgroup "a", spin\) \(pid \d+\) failed: sched_setaffinity\(\d+\): Invalid argument/)
    } finally {
      await p.kill()
    }
  })
})
