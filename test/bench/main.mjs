#!/usr/bin/env node
// `npm run bench [-- --quick] [-- GROUP] [-- --json FILE]`: ktstr's costs as ratios against
// baselines measured in the same run, printed as one Markdown table and written as JSON
// (bench-results.json by default). Each group of rows is a file here, which says what it measures:
// channel, boot, disk, pool, watch, memory, monitor, kvm-nested.
import fs from 'node:fs'
import os from 'node:os'
import { benchBoot } from './boot.mjs'
import { benchChannel } from './channel.mjs'
import { benchDisk } from './disk.mjs'
import { benchKvmInner, benchKvmNested } from './kvm-nested.mjs'
import { benchMemory } from './memory.mjs'
import { benchMonitor } from './monitor.mjs'
import { dist, jsonFile, only, quick } from './options.mjs'
import { benchPool } from './pool.mjs'
import { rows, table } from './table.mjs'
import { benchWatch } from './watch.mjs'

const { probeKvm } = await import(dist('src/vm/accel.js'))

const groups = {
  channel: benchChannel,
  boot: benchBoot,
  disk: benchDisk,
  pool: benchPool,
  watch: benchWatch,
  memory: benchMemory,
  monitor: benchMonitor,
  'kvm-nested': benchKvmNested,
}
// What kvm-nested runs inside its outer guest; not part of a whole run.
const innerGroups = { 'kvm-inner': benchKvmInner }
const run = only ? { ...groups, ...innerGroups }[only] : undefined
if (only && !run) {
  console.error(`bench: unknown row group ${only}; known: ${Object.keys(groups).join(', ')}`)
  process.exit(2)
}
const started = new Date()
const host = { cpus: os.availableParallelism(), kvm: probeKvm().usable }
// Written after every group, so a run cut short keeps the rows it measured.
const save = () =>
  fs.writeFileSync(jsonFile, `${JSON.stringify({ started: started.toISOString(), minutes: (Date.now() - started.getTime()) / 60_000, quick, host, rows }, null, 2)}\n`)
for (const g of run ? [run] : Object.values(groups)) {
  await g()
  save()
}
console.log(table())
console.log(`written: ${jsonFile}`)
