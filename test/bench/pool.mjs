// Vitest rows: N trivial sched files through the ktstr pool, one guest at a time, vs `ktstr exec`
// of N commands (the per-file cost of Vitest, its worker in the guest and the relay); and files per
// minute with 1, 2 and 4 guests at once (--maxWorkers) vs one at a time. Every guest is warm.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cli, dist, guestKernel, quick, repo, timeIt } from './options.mjs'
import { addRow, notRun } from './table.mjs'

const VITEST = path.join(repo, 'node_modules', 'vitest', 'vitest.mjs')
const TOPOLOGY = '1n1l1c1t'

/** A project of `n` sched files, each one trivial test, in a folder under the repo (so `vitest` resolves). */
function project(n) {
  const root = path.join(repo, 'test', 'fixtures', '.tmp')
  fs.mkdirSync(root, { recursive: true })
  const dir = fs.mkdtempSync(path.join(root, 'bench-pool-'))
  const plugin = path.relative(dir, dist('plugin/index.js'))
  fs.writeFileSync(
    path.join(dir, 'vitest.config.mjs'),
    `import { ktstr } from './${plugin}'\nexport default { plugins: [ktstr({ topology: '${TOPOLOGY}' })], test: { include: ['**/*.sched.test.ts'], pool: 'ktstr' } }\n`,
  )
  for (let i = 0; i < n; i++)
    fs.writeFileSync(path.join(dir, `f${i}.sched.test.ts`), `import { expect, test } from 'vitest'\ntest('trivial ${i}', () => expect(${i}).toBe(${i}))\n`)
  return dir
}

export async function benchPool() {
  const kernel = guestKernel()
  if (!kernel) return notRun('Vitest per-file cost', 's', 'needs a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  const n = quick ? 4 : 8
  const dir = project(n)
  const env = { KTSTR_KERNEL: kernel, TMPDIR: os.tmpdir() }
  const vitest = (workers) => timeIt(process.execPath, [VITEST, 'run', '--root', dir, `--maxWorkers=${workers}`], env, dir)
  const exec = () => timeIt(process.execPath, [cli, 'exec', '--topology', TOPOLOGY, '--', 'true'], env)
  try {
    vitest(1) // make this shape's snapshots (the pool's guest and exec's differ in their command line)
    exec()
    let execMs = 0
    for (let i = 0; i < n; i++) execMs += exec()
    const one = vitest(1)
    addRow(`Vitest per-file cost (${n} trivial files, 1 guest at a time)`, one / n / 1000, execMs / n / 1000, 's', `ktstr exec -- true, ${n} times`)
    const perMin = (ms) => (n / ms) * 60_000
    for (const k of [2, 4])
      addRow(
        `sched files per minute, ${k} guests at once`,
        perMin(vitest(k)),
        perMin(one),
        'files/min',
        `1 guest at a time (${os.availableParallelism()} host CPUs; 1 vCPU guests)`,
      )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
