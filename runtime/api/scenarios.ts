/**
 * ktstr's 14 canned scenarios (`scenarios::*`, src/scenario/scenarios.rs) as run plans:
 * `await run(scenarios.steady())`, then assert on the report. Each takes the duration (default 2 s)
 * and workloads per cgroup (default 2, ktstr's workers_per_cgroup). Topology-dependent cpusets are
 * computed from the guest's topology when the run starts.
 */
import { cgroup } from './cgroup.js'
import type { Duration } from './duration.js'
import type { RunOptions } from './run.js'
import { op, type Step } from './steps.js'
import type { Topo } from './topology/topo.js'
import { work } from './work.js'

export interface ScenarioOptions {
  duration?: Duration
  /** Workloads per cgroup (default 2). */
  workers?: number
}

const plan = (name: string, o: ScenarioOptions, p: Omit<RunOptions, 'name' | 'duration'>): RunOptions => ({
  name,
  duration: o.duration ?? '2s',
  ...p,
})

/** Two cgroups, no cpusets, equal CPU-spin load. */
function steady(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('steady', o, { cgroups: [cgroup('cg_0').workers(n, work.spin()), cgroup('cg_1').workers(n, work.spin())] })
}

/** Two cgroups on different LLCs (needs 2 LLCs). */
function steadyLlc(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('steady_llc', o, {
    requires: { llcs: 2 },
    cgroups: [
      cgroup('cg_0')
        .cpuset((t) => t.llc(0))
        .workers(n),
      cgroup('cg_1')
        .cpuset((t) => t.llc(1))
        .workers(n),
    ],
  })
}

/** Two cgroups of 32 mixed workloads each: far more workloads than CPUs. */
function oversubscribed(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 32
  return plan('oversubscribed', o, { cgroups: [cgroup('cg_0').workers(n, work.mixed()), cgroup('cg_1').workers(n, work.mixed())] })
}

const half = (t: Topo, i: number) => t.disjoint(i, 2)

/** Two cgroups start without cpusets; halfway they get disjoint ones. */
function cpusetApply(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('cpuset_apply', o, {
    requires: { usableCpus: 2 },
    cgroups: [cgroup('cg_0').workers(n), cgroup('cg_1').workers(n)],
    steps: [
      { hold: '50%', label: 'no cpusets' },
      { hold: '50%', label: 'disjoint cpusets', ops: [op.setCpuset('cg_0', (t) => half(t, 0)), op.setCpuset('cg_1', (t) => half(t, 1))] },
    ],
  })
}

/** Two cgroups start with disjoint cpusets; halfway the cpusets are cleared. */
function cpusetClear(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('cpuset_clear', o, {
    requires: { usableCpus: 2 },
    cgroups: [
      cgroup('cg_0')
        .cpuset((t) => half(t, 0))
        .workers(n),
      cgroup('cg_1')
        .cpuset((t) => half(t, 1))
        .workers(n),
    ],
    steps: [
      { hold: '50%', label: 'disjoint cpusets' },
      { hold: '50%', label: 'cleared', ops: [op.clearCpuset('cg_0'), op.clearCpuset('cg_1')] },
    ],
  })
}

/** Even split, then cg_0 shrinks to a quarter while cg_1 grows to three quarters, then the reverse. */
function cpusetResize(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('cpuset_resize', o, {
    requires: { usableCpus: 2 },
    cgroups: [
      cgroup('cg_0')
        .cpuset((t) => t.range(0, 0.5))
        .workers(n),
      cgroup('cg_1')
        .cpuset((t) => t.range(0.5, 1))
        .workers(n),
    ],
    steps: [
      { hold: '34%', label: 'even split' },
      { hold: '33%', label: 'cg_0 shrinks', ops: [op.setCpuset('cg_0', (t) => t.range(0, 0.25)), op.setCpuset('cg_1', (t) => t.range(0.25, 1))] },
      { hold: '33%', label: 'cg_0 grows', ops: [op.setCpuset('cg_0', (t) => t.range(0, 0.75)), op.setCpuset('cg_1', (t) => t.range(0.75, 1))] },
    ],
  })
}

/** Two cgroups, then two more added halfway. */
function cgroupAdd(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('cgroup_add', o, {
    cgroups: [cgroup('cg_0').workers(n), cgroup('cg_1').workers(n)],
    steps: [{ hold: '50%' }, { hold: '50%', ops: [op.addCgroup(cgroup('cg_2').workers(n)), op.addCgroup(cgroup('cg_3').workers(n))] }],
  })
}

/** Four cgroups, the second half removed halfway. */
function cgroupRemove(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('cgroup_remove', o, {
    cgroups: [0, 1, 2, 3].map((i) => cgroup(`cg_${i}`).workers(n)),
    steps: [{ hold: '50%' }, { hold: '50%', ops: [op.removeCgroup('cg_2'), op.removeCgroup('cg_3')] }],
  })
}

/** Two cgroups whose workloads get random CPU subsets four times during the run. */
function affinityChange(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  const reshuffle = [op.setAffinity('cg_0', 'random-subset'), op.setAffinity('cg_1', 'random-subset')]
  return plan('affinity_change', o, {
    cgroups: [cgroup('cg_0').workers(n), cgroup('cg_1').workers(n)],
    steps: [0, 1, 2, 3].map((): Step => ({ hold: '25%', ops: reshuffle })),
  })
}

/** Every workload of two cgroups pinned to the same two CPUs. */
function affinityPinned(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  const two = (t: Topo) => t.usableCpus().slice(0, 2)
  return plan('affinity_pinned', o, {
    requires: { usableCpus: 2 },
    cgroups: [cgroup('cg_0').workers(n, work.spin(), { affinity: two }), cgroup('cg_1').workers(n, work.spin(), { affinity: two })],
  })
}

/** Two cgroups plus one unconstrained host workload per CPU, outside the test cgroups. */
function hostContention(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('host_contention', o, {
    cgroups: [cgroup('cg_0').workers(n), cgroup('cg_1').workers(n)],
    steps: [{ hold: '100%', ops: [op.spawnHost('per-cpu')] }],
  })
}

/** A CPU-heavy, a bursty and an I/O cgroup side by side. */
function mixedWorkloads(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('mixed_workloads', o, {
    cgroups: [cgroup('cg_heavy').workers(n * 2, work.spin()), cgroup('cg_bursty').workers(n, work.bursty()), cgroup('cg_io').workers(n, work.ioSync())],
  })
}

/** Workloads at the leaves of a nested hierarchy. */
function nestedSteady(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('nested_steady', o, {
    cgroups: [cgroup('cg_0/sub_a').workers(n), cgroup('cg_0/sub_b').workers(n), cgroup('cg_1/sub_b').workers(n), cgroup('cg_1/sub_a/deep').workers(n)],
  })
}

/** Workloads moved through a nested hierarchy: sub → parent → another tree's sub → its parent. */
function nestedTaskMove(o: ScenarioOptions = {}): RunOptions {
  const n = o.workers ?? 2
  return plan('nested_task_move', o, {
    cgroups: [cgroup('cg_0/sub_a').workers(n), cgroup('cg_1/sub_b')],
    steps: [
      { hold: '25%', label: 'in cg_0/sub_a' },
      { hold: '25%', label: 'in cg_0', ops: [op.moveTasks('cg_0/sub_a', 'cg_0')] },
      { hold: '25%', label: 'in cg_1/sub_b', ops: [op.moveTasks('cg_0', 'cg_1/sub_b')] },
      { hold: '25%', label: 'in cg_1', ops: [op.moveTasks('cg_1/sub_b', 'cg_1')] },
    ],
  })
}

export const scenarios = {
  steady,
  steadyLlc,
  oversubscribed,
  cpusetApply,
  cpusetClear,
  cpusetResize,
  cgroupAdd,
  cgroupRemove,
  affinityChange,
  affinityPinned,
  hostContention,
  mixedWorkloads,
  nestedSteady,
  nestedTaskMove,
} as const

export type ScenarioName = keyof typeof scenarios
