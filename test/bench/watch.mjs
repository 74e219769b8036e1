// Watch-mode row: Vitest in watch mode over one sched file (scx_simple, 2 CPUs, a 1 s run()); each
// edit is written as an editor saves (whole, renamed into place), 2 s after the previous result (as
// a user reads it), and timed from the save to the end of its re-run. Warm (the guest restored from
// its snapshot; in watch mode, restored ahead of the save) vs the same edit with KTSTR_WARM=0.
import fs from 'node:fs'
import path from 'node:path'
import { makeProject, schedFile } from '../load/project.mjs'
import { guestKernel, median, quick, repo } from './options.mjs'
import { addRow, notRun } from './table.mjs'

/** Between a result and the next save. */
const READ_RESULT_MS = 2000

export async function benchWatch() {
  const kernel = guestKernel()
  if (!kernel) return notRun('watch mode, edit to result', 's', 'needs a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  const env = { KTSTR_KERNEL: process.env.KTSTR_KERNEL, KTSTR_WARM: process.env.KTSTR_WARM, TMPDIR: process.env.TMPDIR, NO_COLOR: process.env.NO_COLOR }
  const project = makeProject('bench-watch', 1)
  Object.assign(process.env, { KTSTR_KERNEL: kernel, TMPDIR: project.tmpdir, NO_COLOR: '1' })
  const { createVitest } = await import(path.join(repo, 'node_modules', 'vitest', 'dist', 'node.js'))
  let onRunEnd
  const nextRun = () =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('bench watch: no re-run within 180 s')), 180_000)
      onRunEnd = (modules) => {
        clearTimeout(t)
        const bad = modules.filter((m) => m.state() !== 'passed')
        if (bad.length) reject(new Error(`bench watch: the file ${bad[0].state()}: ${JSON.stringify(bad[0].errors?.() ?? [])}`))
        else resolve()
      }
    })
  const file = project.files[0]
  let edition = 0
  /** ms from saving an edit to the end of its re-run. */
  const edit = async () => {
    await new Promise((r) => setTimeout(r, READ_RESULT_MS))
    const done = nextRun()
    const t0 = performance.now()
    fs.writeFileSync(`${file}.tmp`, schedFile(0, { marker: `\n// edition ${++edition}\n` }))
    fs.renameSync(`${file}.tmp`, file)
    await done
    return performance.now() - t0
  }
  let vitest
  try {
    vitest = await createVitest('test', { root: project.dir, watch: true, reporters: [{ onTestRunEnd: (m) => onRunEnd?.(m) }] })
    const first = nextRun()
    await vitest.start()
    await first // also makes this shape's snapshot
    const warm = [],
      cold = []
    // Each edit pair takes ~30 s under TCG: two in --quick mode.
    for (let i = 0; i < (quick ? 2 : 3); i++) {
      process.env.KTSTR_WARM = '0'
      cold.push(await edit())
      delete process.env.KTSTR_WARM
      warm.push(await edit())
    }
    addRow('watch mode, edit to result (scx_simple, 1 s run)', median(warm) / 1000, median(cold) / 1000, 's', 'the same edit with KTSTR_WARM=0 (cold boot)')
  } finally {
    await vitest?.close()
    project.remove()
    for (const [k, v] of Object.entries(env))
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
  }
}
