// A throw-away sched project for the load scripts: N sched files of known outcome in a fresh
// folder inside the repo (so `import 'ktstr'` resolves to this package), its own TMPDIR, and
// probes of this process and of what its guests left behind.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** File i: its own topology and scheduler, a check of both, a short run(); every 6th file has one failing test. */
export function schedFile(i, { marker = '' } = {}) {
  const twoCpus = i % 2 === 0
  const simple = i % 3 !== 2
  return `/** @ktstr topology=${twoCpus ? '1n1l2c1t' : '1n1l1c1t'}${simple ? ' scheduler=scx_simple' : ''} memory=512 */
import fs from 'node:fs'
import { expect, test } from 'vitest'
import { cgroup, run, work } from 'ktstr'

const read = (p: string) => fs.readFileSync(p, 'utf8').trim()
${marker}
test('file ${i}: the guest it asked for', () => {
  expect(read('/sys/devices/system/cpu/online')).toBe('${twoCpus ? '0-1' : '0'}')
  expect(read('/sys/kernel/sched_ext/state')).toBe('${simple ? 'enabled' : 'disabled'}')
  // A pristine guest: no other file's marker.
  expect(fs.readdirSync('/tmp').filter((f) => f.startsWith('load-marker-'))).toEqual([])
  fs.writeFileSync('/tmp/load-marker-${i}', '')
})

test('file ${i}: spinners are not starved', async () => {
  const r = await run({ duration: '1s', cgroups: [cgroup('a').workers(2, work.spin())] })
  expect(r).toHaveNoStarvation()
})
${i % 6 === 5 ? `\ntest('file ${i}: fails on purpose', () => {\n  expect(${i}).toBe(-1)\n})\n` : ''}`
}

/** Whether file i's tests should pass: [name, expected state]. */
export function expectedResults(i) {
  const r = [
    [`file ${i}: the guest it asked for`, 'passed'],
    [`file ${i}: spinners are not starved`, 'passed'],
  ]
  if (i % 6 === 5) r.push([`file ${i}: fails on purpose`, 'failed'])
  return r
}

export function makeProject(name, n) {
  const root = path.join(repo, 'test', 'fixtures', '.tmp')
  fs.mkdirSync(root, { recursive: true })
  const dir = fs.mkdtempSync(path.join(root, `${name}-`))
  const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-tmp-`))
  fs.writeFileSync(
    path.join(dir, 'vitest.config.mjs'),
    `import { ktstr } from '${path.join(repo, 'dist', 'plugin', 'index.js')}'\nexport default { plugins: [ktstr({})], test: { include: ['**/*.sched.test.ts'], pool: 'ktstr', testTimeout: 120000 } }\n`,
  )
  const files = []
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `f${String(i).padStart(2, '0')}.sched.test.ts`)
    fs.writeFileSync(f, schedFile(i))
    files.push(f)
  }
  return { dir, tmpdir, files, remove: () => (fs.rmSync(dir, { recursive: true, force: true }), fs.rmSync(tmpdir, { recursive: true, force: true })) }
}

/** What a process holds: RSS, fds, threads, and its descendants (QEMUs among them). */
export function probe(pid = process.pid) {
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length
  const threads = fs.readdirSync(`/proc/${pid}/task`).length
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const rssMib = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024
  return { rssMib, fds, threads, descendants: descendants(pid) }
}

function descendants(pid) {
  let out = ''
  try {
    out = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,comm='], { encoding: 'utf8' })
  } catch {
    return []
  }
  const rows = out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
  const kids = new Map()
  for (const [p, pp, comm] of rows) {
    if (!kids.has(pp)) kids.set(pp, [])
    kids.get(pp).push({ pid: p, comm })
  }
  const found = []
  const walk = (p) => {
    for (const k of kids.get(String(p)) ?? []) {
      if (k.comm === 'ps') continue
      found.push(k)
      walk(k.pid)
    }
  }
  walk(pid)
  return found
}

/** Run folders and QEMUs that this project's TMPDIR still has. */
export function leftovers(tmpdir) {
  const folders = fs.readdirSync(tmpdir)
  let qemus = 0
  try {
    qemus = execFileSync('pgrep', ['-f', `qemu-system-x86_64.*${tmpdir}`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean).length
  } catch {}
  return { folders, qemus }
}
