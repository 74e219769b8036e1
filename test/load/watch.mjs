#!/usr/bin/env node
// `npm run load:watch`: Vitest in watch mode over two sched files for --minutes (20), a scripted
// edit every --every seconds (30) alternating between the files. Each edit sets the edition the
// file's extra test checks, and every 4th edition fails on purpose, so a stale or mixed-up re-run
// shows as a wrong result. This process (which is Vitest) is probed after every re-run: RSS, fds,
// threads, child processes; the figures at the start and the end are printed. Exit 1 on a wrong
// result, a re-run that never came, or growth in fds, threads or processes.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { leftovers, makeProject, probe, repo, schedFile } from './project.mjs'

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '20' }, every: { type: 'string', default: '30' } } })
const endAt = Date.now() + Number(values.minutes) * 60_000
const everyMs = Number(values.every) * 1000
const project = makeProject('watch', 2)
process.env.TMPDIR = project.tmpdir
process.env.NO_COLOR = '1'
const { createVitest } = await import(path.join(repo, 'node_modules', 'vitest', 'dist', 'node.js'))

const editionTest = (i, edition) => `\ntest('file ${i}: edition ${edition}', () => {\n  expect(${edition} % 4).not.toBe(3)\n})\n`
// Written whole and renamed into place, as editors with atomic save do: a write in place can be
// seen half-done by the watcher, which then runs an empty or partial file first.
const write = (i, edition) => {
  const tmp = `${project.files[i]}.tmp`
  fs.writeFileSync(tmp, schedFile(i, { marker: editionTest(i, edition) }))
  fs.renameSync(tmp, project.files[i])
}

let onRunEnd
const reporter = { onTestRunEnd: (modules, errors) => onRunEnd?.(modules, errors) }
const nextRun = (ms) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no re-run within ${ms / 1000} s`)), ms)
    onRunEnd = (modules, errors) => (clearTimeout(t), (onRunEnd = undefined), resolve({ modules, errors }))
  })

const problems = []
const samples = []
let vitest
try {
  write(0, 0)
  write(1, 0)
  vitest = await createVitest('test', { root: project.dir, watch: true, reporters: [reporter] })
  const first = nextRun(300_000)
  await vitest.start()
  await first
  await new Promise((r) => setTimeout(r, 2000))
  samples.push({ edit: 0, ...snap() })
  for (let edit = 1; Date.now() < endAt; edit++) {
    const t0 = Date.now()
    const i = edit % 2
    const run = nextRun(180_000)
    write(i, edit)
    const { modules, errors } = await run
    check(edit, i, modules, errors)
    await new Promise((r) => setTimeout(r, 2000))
    samples.push({ edit, ...snap(), rerunS: ((Date.now() - t0 - 2000) / 1000).toFixed(1) })
    await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - t0))))
  }
} catch (e) {
  problems.push(String(e.message ?? e))
} finally {
  await vitest?.close()
}

const left = leftovers(project.tmpdir)
project.remove()
const first = samples[0]
const last = samples[samples.length - 1]
console.table([first, samples[Math.floor(samples.length / 2)], last].filter(Boolean))
if (first && last) {
  if (last.fds > first.fds) problems.push(`fds grew ${first.fds} → ${last.fds}`)
  if (last.threads > first.threads) problems.push(`threads grew ${first.threads} → ${last.threads}`)
  if (last.children > first.children) problems.push(`child processes grew ${first.children} → ${last.children}`)
  console.log(
    `watch: ${samples.length - 1} edits; RSS ${first.rssMib} → ${last.rssMib} MiB (max ${Math.max(...samples.map((s) => Number(s.rssMib)))}), fds ${first.fds} → ${last.fds}, threads ${first.threads} → ${last.threads}, children ${first.children} → ${last.children}`,
  )
}
if (left.qemus || left.folders.length) problems.push(`${left.qemus} QEMU(s) and run folders [${left.folders.join(', ')}] left behind`)
if (problems.length) {
  console.error(`watch: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
// Vitest set a failing exit code for the editions that fail on purpose; the verdict is ours.
process.exitCode = 0

function snap() {
  globalThis.gc?.()
  const p = probe()
  return { rssMib: p.rssMib.toFixed(0), fds: p.fds, threads: p.threads, children: p.descendants.length }
}

function check(edit, i, modules, errors) {
  for (const e of errors ?? []) problems.push(`edit ${edit}: unhandled error: ${String(e?.message ?? e)}`)
  const name = path.basename(project.files[i])
  const mod = modules.find((m) => path.basename(m.moduleId) === name)
  if (!mod) return problems.push(`edit ${edit}: ${name} was not re-run`)
  const r = [...mod.children.allTests()].find((t) => t.name === `file ${i}: edition ${edit}`)?.result()
  const want = edit % 4 === 3 ? 'failed' : 'passed'
  if (r?.state !== want) {
    const ran = [...mod.children.allTests()].map((t) => t.name).join(', ')
    problems.push(`edit ${edit}: ${name} edition test ${r?.state ?? 'missing'}, expected ${want} (tests run: ${ran || 'none'}; ${mod.errors?.()[0]?.message ?? ''})`)
  }
}
