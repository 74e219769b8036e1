// Runs inside a ktstr guest (see ../guest.test.ts): `node suites.mjs <suite>`. Each result is one
// line `KTSTR-RESULT <name> <json>` (a run report, or facts) that the host test asserts on.
import fs from 'node:fs'
import {
  ab,
  cgroup,
  checkCpuset,
  checkFairness,
  checkMaxGap,
  checkStarvation,
  currentScheduler,
  op,
  run,
  scenarios,
  skipReason,
  startScheduler,
  topology,
  work,
} from '../../../dist/runtime/index.js'

const emit = (name, value) => process.stdout.write(`KTSTR-RESULT ${name} ${JSON.stringify(value)}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const memAvailableKb = () => Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1])
/** This process's scheduling policy (/proc/self/stat field 41: 0 SCHED_OTHER, 1 SCHED_FIFO). */
const selfPolicy = () => Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[38])
const memTotalKb = () => Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1])

const suites = {
  // The done criteria: fairness, cpuset isolation, a starved SCHED_IDLE worker.
  async criteria() {
    emit('topology', { topology: String(topology()), llcs: topology().llcs, scheduler: currentScheduler() })

    // Two equal spin cgroups, 2x oversubscribed (8 spinners on 4 CPUs).
    const fairRun = run({ duration: '2s', cgroups: [cgroup('a').workers(4, work.spin()), cgroup('b').workers(4, work.spin())] })
    await sleep(1000)
    const during = selfPolicy()
    const fair = await fairRun
    emit('self-policy', { during, after: selfPolicy() })
    emit('fairness', fair)
    emit('fairness-checks', { a: checkFairness(fair.cgroup('a')), b: checkFairness(fair.cgroup('b')), starvation: checkStarvation(fair) })

    // A cgroup held to CPUs 0-1 next to an unrestricted one.
    const iso = await run({ duration: '2s', cgroups: [cgroup('pinned').cpuset('0-1').workers(4, work.spin()), cgroup('free').workers(4, work.spin())] })
    emit('cpuset', iso)
    emit('cpuset-checks', { pinned: checkCpuset(iso.cgroup('pinned')) })

    // A SCHED_IDLE spinner sharing CPU 1 with a SCHED_FIFO hog; a normal cgroup elsewhere.
    const starve = await run({
      duration: '3s',
      cgroups: [
        cgroup('hog')
          .cpuset('1')
          .workers(1, work.spin({ policy: 'fifo', priority: 50 })),
        cgroup('starve')
          .cpuset('1')
          .workers(1, work.spin({ policy: 'idle' })),
        cgroup('bystander').cpuset('2-3').workers(2, work.spin()),
      ],
    })
    emit('starvation', starve)
    emit('starvation-checks', { starvation: checkStarvation(starve), gap: checkMaxGap(starve, 1000) })
  },

  // Every work type in its own cgroup at once, then 64 workers in this 1 GiB guest.
  async worktypes() {
    const types = ['spin', 'yield', 'mixed', 'ioSync', 'bursty', 'pipe', 'futex', 'cache', 'forkExit', 'niceSweep', 'affinityChurn', 'policyChurn']
    const before = Number(/^processes (\d+)/m.exec(fs.readFileSync('/proc/stat', 'utf8'))[1])
    const all = await run({ duration: '3s', cgroups: types.map((t) => cgroup(t).workers(2, work[t]())) })
    const after = Number(/^processes (\d+)/m.exec(fs.readFileSync('/proc/stat', 'utf8'))[1])
    emit('worktypes', all)
    emit('worktypes-facts', { processesDelta: after - before })

    const idle = memAvailableKb()
    const sixtyFour = run({ duration: '3s', cgroups: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => cgroup(`g${i}`).workers(8, i % 2 ? work.mixed() : work.spin())) })
    let minAvail = memAvailableKb()
    for (let i = 0; i < 20; i++) {
      await sleep(100)
      minAvail = Math.min(minAvail, memAvailableKb())
    }
    const r = await sixtyFour
    emit('sixty-four', r)
    emit('sixty-four-memory', { memTotalKb: memTotalKb(), memAvailableBeforeKb: idle, memAvailableMinKb: minAvail })
  },

  // ktstr's 14 canned scenarios, one second each, plus steps that exercise every op.
  async scenarios() {
    const out = {}
    for (const [name, make] of Object.entries(scenarios)) {
      const plan = make({ duration: '1500ms' })
      const skip = skipReason(plan)
      if (skip) {
        out[name] = { skipped: skip }
        continue
      }
      const r = await run(plan)
      emit(`scenario-${name}`, r)
    }
    emit('scenario-skips', out)

    const ops = await run({
      duration: '2400ms',
      cgroups: [cgroup('a').workers(2, work.spin()), cgroup('b').workers(2, work.spin())],
      steps: [
        { hold: '300ms', label: 'start' },
        { hold: '300ms', ops: [op.setCpuset('a', '0'), op.setCpuset('b', '1-2')] },
        { hold: '300ms', ops: [op.swapCpusets('a', 'b')] },
        { hold: '300ms', ops: [op.clearCpuset('a'), op.setAffinity('b', 'single-cpu')] },
        { hold: '300ms', ops: [op.addCgroup(cgroup('c').cpuset('3').workers(2, work.yield())), op.spawn('a', 2, work.bursty({ burstMs: 5, sleepMs: 5 }))] },
        { hold: '300ms', ops: [op.moveTasks('c', 'a'), op.stop('b')] },
        { hold: '300ms', ops: [op.removeCgroup('c')], cgroups: [cgroup('stepwise').workers(2, work.spin())] },
        { hold: '300ms', every: '100ms', ops: [op.setAffinity('a', 'random-subset')] },
      ],
    })
    emit('ops', ops)
  },

  // No scheduler attached by the host: EEVDF, an A/B against it, and a scheduler killed mid-run.
  async lifecycle() {
    const binary = process.argv[3]
    emit('eevdf-now', currentScheduler())
    const eevdf = await run({ duration: '1s', cgroups: [cgroup('a').workers(2, work.spin())] })
    emit('eevdf-run', eevdf)

    const res = await ab({
      scenario: { duration: '1500ms', cgroups: [cgroup('a').workers(4, work.spin()), cgroup('b').workers(4, work.yield())] },
      metric: (r) => r.cgroup('a').workUnits,
      scheduler: binary,
    })
    emit('ab', {
      scheduler: res.scheduler,
      baseline: res.baseline,
      candidate: res.candidate,
      ratio: res.ratio,
      baselineScheduler: res.baselineReport.scheduler,
      candidateScheduler: res.candidateReport.scheduler,
      after: currentScheduler(),
    })

    const handle = await startScheduler(binary)
    const killed = run({ duration: '2s', cgroups: [cgroup('a').workers(2, work.spin())] })
    await sleep(700)
    process.kill(handle.pid, 'SIGKILL')
    const r = await killed
    await handle.stop()
    emit('killed', r)
  },
}

const suite = suites[process.argv[2]]
if (!suite) {
  console.error(`usage: node suites.mjs ${Object.keys(suites).join('|')}`)
  process.exit(64)
}
await suite()
