/**
 * `ktstr`: the API a sched test file imports. Inside a guest:
 *   import { run, cgroup, work, topology } from 'ktstr'
 *   const r = await run({ duration: '2s', cgroups: [cgroup('a').workers(4, work.spin())] })
 *   expect(r).toHaveNoStarvation()
 */

export { type AbOptions, type AbResult, ab, ratioOf } from './api/ab.js'
export { type SchedBenchMetric, type SchedBenchOptions, type SchedBenchResult, type SchedBenchRun, schedBench } from './api/bench.js'
export { type BpfGlobals, type BpfMapHandle, bpf } from './api/bpf.js'
export { type AffinityInput, CgroupDef, type CpusetInput, cgroup, type WorkerGroup } from './api/cgroup.js'
export {
  type CheckResult,
  checkCpuset,
  checkFairness,
  checkMaxGap,
  checkScheduler,
  checkStarvation,
  DEFAULT_MAX_GAP_MS,
  DEFAULT_SPREAD_PCT,
} from './api/checks.js'
export { type Duration, parseDuration } from './api/duration.js'
export { type KtstrMatchers, matchers, registerMatchers } from './api/matchers.js'
export { type CounterSeries, type CounterTrack, type MonitorMark, monitor } from './api/monitor.js'
export { type KtstrMonitorMatchers, monitorMatchers } from './api/monitor-matchers.js'
export {
  type CgroupReport,
  percentile,
  Report,
  type ReportData,
  reportFromJSON,
  type SchedulerState,
  summarize,
  type WorkerSet,
  type WorkerTelemetry,
} from './api/report.js'
export { type RunOptions, run, skipReason } from './api/run.js'
export { type ScenarioName, type ScenarioOptions, scenarios } from './api/scenarios.js'
export { currentScheduler, type SchedulerHandle, startScheduler } from './api/scheduler.js'
export { type Hold, type Op, op, type Step, step } from './api/steps.js'
export { Topo, topology, topologyFromSpec, topologyFromSysfs } from './api/topology/topo.js'
export { describeWork, type Policy, type SchedOptions, WORK_TYPES, type WorkSpec, type WorkTypeName, work } from './api/work.js'
export { numericLeaves, type PayloadOptions, type PayloadResult, parseTap, payload, type TapCase, tapTests } from './payload/index.js'
export { formatCpuList, parseCpuList } from './protocol/cpulist.js'
export { KtstrError } from './protocol/errors.js'
export type { BpfMapContents, BpfMapInfo, BpfValue, CpuSample, MonitorSample, MonitorStatus, MonitorWindow, ScxState } from './protocol/monitor.js'
export { findPreset, PRESETS, presetNames, resolveTopology, type TopologyPreset } from './protocol/presets.js'
export { cpuCount, formatTopology, parseTopology, type TopologySpec, validateTopology } from './protocol/topology.js'
