import { cgroup, currentScheduler, run, topology, work } from '../../../dist/runtime/index.js'

const t0 = Date.now()
console.log('topology', String(topology()), JSON.stringify(topology().llcs), 'sched', JSON.stringify(currentScheduler()))
const r = await run({ duration: '2s', cgroups: [cgroup('a').workers(4, work.spin()), cgroup('b').cpuset('0-1').workers(4, work.spin())] })
for (const w of r.workers)
  console.log(w.pid, w.cgroup, w.workUnits, Math.round(w.offCpuPct), w.maxGapMs.toFixed(1), w.maxGapCpu, w.cpusUsed.join(','), w.migrations, Math.round(w.runDelayNs / 1e6))
console.log('scheduler', JSON.stringify(r.scheduler), 'took', Date.now() - t0, 'ms', 'dur', r.durationMs)
