#!/usr/bin/env node
// `npm run load`: 12 sched files through the ktstr pool at once (the capacity gate decides how many
// guests run together), three rounds in ONE long-lived Vitest, as watch mode or an editor keeps it.
// Every result must be the expected one, and after each round this process's fds, threads and
// children, and the run's QEMUs and run folders, must be back to the baseline taken before round 1;
// RSS is reported (V8 grows its heap once, so the check is growth across rounds 1 → 3).
// Options: --files N (12), --rounds N (3). Exit 1 on any wrong result or leak.
import path from 'node:path'
import { parseArgs } from 'node:util'
import { expectedResults, leftovers, makeProject, probe, repo } from './project.mjs'

const { values } = parseArgs({ options: { files: { type: 'string', default: '12' }, rounds: { type: 'string', default: '3' } } })
const nFiles = Number(values.files)
const rounds = Number(values.rounds)
const project = makeProject('load', nFiles)
process.env.TMPDIR = project.tmpdir
process.env.NO_COLOR = '1'
const { createVitest } = await import(path.join(repo, 'node_modules', 'vitest', 'dist', 'node.js'))

const problems = []
const rows = []
const gc = () => globalThis.gc?.()
let vitest
try {
  vitest = await createVitest('test', { root: project.dir, watch: false, reporters: [{}] })
  const specs = await vitest.globTestSpecifications()
  if (specs.length !== nFiles) throw new Error(`expected ${nFiles} sched files, Vitest found ${specs.length}`)
  gc()
  const base = probe()
  rows.push({ round: 'baseline', ...summary(base), wallS: '' })
  for (let round = 1; round <= rounds; round++) {
    const t0 = performance.now()
    const result = await vitest.runTestSpecifications(specs)
    const wallS = ((performance.now() - t0) / 1000).toFixed(1)
    checkResults(round, result)
    // Give the last VM's exit and the channel close a moment, then compare with the baseline.
    await new Promise((r) => setTimeout(r, 2000))
    gc()
    const now = probe()
    const left = leftovers(project.tmpdir)
    rows.push({ round: String(round), ...summary(now), wallS })
    if (now.fds > base.fds) problems.push(`round ${round}: ${now.fds} fds open, ${base.fds} before round 1`)
    if (now.threads > base.threads) problems.push(`round ${round}: ${now.threads} threads, ${base.threads} before round 1`)
    if (now.descendants.length > base.descendants.length) problems.push(`round ${round}: child processes left: ${now.descendants.map((d) => d.comm).join(', ')}`)
    if (left.qemus || left.folders.length) problems.push(`round ${round}: ${left.qemus} QEMU(s) and run folders [${left.folders.join(', ')}] left in ${project.tmpdir}`)
  }
  const rss = rows.slice(1).map((r) => Number(r.rssMib))
  if (rounds >= 3 && rss[rss.length - 1] - rss[1] > 64) problems.push(`RSS grew ${(rss[rss.length - 1] - rss[1]).toFixed(0)} MiB from round 1 to round ${rounds}`)
} finally {
  await vitest?.close()
  project.remove()
}

console.table(rows)
if (problems.length) {
  console.error(`load: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
// Vitest set a failing exit code for the files that fail on purpose; the verdict is ours.
process.exitCode = 0
console.log(`load: ${rounds} rounds of ${nFiles} sched files: every result as expected, fds/threads/processes back to baseline`)

function summary(p) {
  return { rssMib: p.rssMib.toFixed(0), fds: p.fds, threads: p.threads, children: p.descendants.length }
}

function checkResults(round, result) {
  for (const e of result.unhandledErrors) problems.push(`round ${round}: unhandled error: ${String(e?.message ?? e)}`)
  const byFile = new Map(result.testModules.map((m) => [path.basename(m.moduleId), m]))
  for (let i = 0; i < nFiles; i++) {
    const name = `f${String(i).padStart(2, '0')}.sched.test.ts`
    const mod = byFile.get(name)
    if (!mod) {
      problems.push(`round ${round}: ${name} did not run`)
      continue
    }
    const got = new Map([...mod.children.allTests()].map((t) => [t.name, t.result()]))
    for (const [title, want] of expectedResults(i)) {
      const r = got.get(title)
      if (r?.state !== want) {
        const why = r?.errors?.[0]?.message ?? mod.errors?.()[0]?.message ?? ''
        problems.push(`round ${round}: ${name} "${title}": ${r?.state ?? 'missing'}, expected ${want}${why ? ` (${why.split('\n')[0]})` : ''}`)
      }
    }
  }
}
