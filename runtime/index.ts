/**
 * `ktstr`: the API a sched test file imports. Inside a guest:
 *   import { run, cgroup, work, topology } from 'ktstr'
 *   const r = await run({ duration: '2s', cgroups: [cgroup('a').workers(4, work.spin())] })
 *   expect(r).toHaveNoStarvation()
 */
export { run, skipReason, type RunOptions } from './api/run.js'
export { cgroup, CgroupDef, type AffinityInput, type CpusetInput, type WorkerGroup } from './api/cgroup.js'
export { work, WORK_TYPES, describeWork, type Policy, type SchedOptions, type WorkSpec, type WorkTypeName } from './api/work.js'
export { op, step, type Hold, type Op, type Step } from './api/steps.js'
export { scenarios, type ScenarioName, type ScenarioOptions } from './api/scenarios.js'
export { topology, topologyFromSpec, topologyFromSysfs, Topo } from './api/topology/topo.js'
export { parseTopology, validateTopology, formatTopology, cpuCount, type TopologySpec } from './protocol/topology.js'
export { PRESETS, presetNames, findPreset, resolveTopology, type TopologyPreset } from './protocol/presets.js'
export { parseCpuList, formatCpuList } from './protocol/cpulist.js'
export { parseDuration, type Duration } from './api/duration.js'
export {
  Report,
  reportFromJSON,
  summarize,
  percentile,
  type CgroupReport,
  type ReportData,
  type SchedulerState,
  type WorkerSet,
  type WorkerTelemetry,
} from './api/report.js'
export {
  checkStarvation,
  checkMaxGap,
  checkFairness,
  checkCpuset,
  checkScheduler,
  DEFAULT_MAX_GAP_MS,
  DEFAULT_SPREAD_PCT,
  type CheckResult,
} from './api/checks.js'
export { matchers, registerMatchers, type KtstrMatchers } from './api/matchers.js'
export { currentScheduler, startScheduler, type SchedulerHandle } from './api/scheduler.js'
export { ab, ratioOf, type AbOptions, type AbResult } from './api/ab.js'
export { KtstrError } from './protocol/errors.js'
export { payload, tapTests, parseTap, numericLeaves, type PayloadOptions, type PayloadResult, type TapCase } from './payload/index.js'
