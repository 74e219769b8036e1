/**
 * Scheduler benchmarks the Vitest way, on real guests: `vitest bench --run --outputJson` over
 * test/fixtures/bench-project (a unit project and a sched project; the guests' scheduler comes from
 * SCHEDULER), then `--compare` of a scx_simple run against that EEVDF baseline. Three guests: the
 * bench file and the file with no bench() in the first run, the bench file again in the second.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot, runCli, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject } from '../helpers/vitest-run.js'

const VITEST = path.join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs')

interface BenchResult {
  id: string
  name: string
  hz: number
  mean: number
  sampleCount: number
  ktstr?: { metric: string; sampleUnit: string; cgroup?: string; runs: Record<string, number | string>[] }
}
interface BenchReport {
  files: { filepath: string; groups: { fullName: string; benchmarks: BenchResult[] }[] }[]
}

let project: FixtureProject

/** `vitest bench` as a user types it (the fixture helper's JSON reporter does not exist in benchmark mode). */
function vitestBench(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VITEST, 'bench', '--run', '--root', project.dir, ...args], {
      cwd: project.dir,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', TMPDIR: project.tmpdir, ...env },
    })
    let out = ''
    child.stdout.on('data', (b) => (out += b))
    child.stderr.on('data', (b) => (out += b))
    child.on('close', (code) => resolve({ code, out }))
  })
}

const readReport = (name: string) => JSON.parse(fs.readFileSync(path.join(project.dir, name), 'utf8')) as BenchReport
const benches = (r: BenchReport) => r.files.flatMap((f) => f.groups.flatMap((g) => g.benchmarks.map((b) => ({ file: path.basename(f.filepath), ...b }))))

describe.skipIf(guestSkipReason)('vitest bench with a sched project', () => {
  beforeAll(() => {
    project = fixtureProject(path.join(repoRoot, 'test', 'fixtures', 'bench-project'))
  })
  afterAll(() => project.remove())

  it('a test reporter under vitest bench fails at startup with one line', async () => {
    const r = await vitestBench(['--reporter=junit'])
    expect(r.code, r.out).toBe(1)
    expect(r.out).toContain(
      'KtstrError: `vitest bench` has no "junit" reporter (benchmark mode has default and verbose): drop --reporter=junit; --outputJson <file> writes the results as JSON\n',
    )
    expect(r.out).not.toMatch(/^\s+at /m)
  })

  it('bench-gate refuses what is not a vitest bench --outputJson report, in one line', async () => {
    const notReport = path.join(project.dir, 'vitest.config.ts')
    const r = await runCli(['bench-gate', notReport, notReport])
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/^ktstr: cannot read .*vitest\.config\.ts: Unexpected token .*; write it with vitest bench --outputJson .*\n$/)
    const pkg = path.join(repoRoot, 'package.json')
    const r2 = await runCli(['bench-gate', pkg, pkg])
    expect(r2.stderr).toBe(`ktstr: ${pkg} is not a vitest bench --outputJson report (no files[].groups); write it with vitest bench --outputJson ${pkg}\n`)
  })

  it('--outputJson holds the run figures; --compare of scx_simple against EEVDF shows the ratio', { timeout: 900_000 }, async () => {
    const base = await vitestBench(['--outputJson', 'eevdf.json'])
    // The bench file without bench() fails, in one line naming the fix; the others pass.
    expect(base.code, base.out).toBe(1)
    expect(base.out).toContain(
      "KtstrError: no-bench.sched.bench.ts has no bench(): a *.sched.bench.ts file runs under `vitest bench`; add bench('name', ...schedBench({ duration, cgroups })) from 'ktstr', or rename it to *.sched.test.ts if it holds tests\n",
    )
    expect(base.out).toContain('FAIL  |sched| no-bench.sched.bench.ts')
    expect(base.out).not.toContain('deprecated')
    // *.sched.bench.ts went to the sched project only, math.bench.ts to the unit project only.
    expect(base.out).toMatch(/✓ \|sched\| mixed\.sched\.bench\.ts > 4 spinners beside a pipe pair/)
    expect(base.out).toMatch(/✓ \|unit\| math\.bench\.ts/)
    expect(base.out).not.toMatch(/\|unit\| [\w.-]*sched/)
    expect(base.out).not.toMatch(/\|sched\| math/)

    const eevdf = benches(readReport('eevdf.json'))
    expect(eevdf.map((b) => [b.file, b.name]).sort()).toEqual([
      ['math.bench.ts', 'sort'],
      ['mixed.sched.bench.ts', 'pipe wake-up latency p50'],
      ['mixed.sched.bench.ts', 'spinner throughput'],
    ])
    const throughput = eevdf.find((b) => b.name === 'spinner throughput')!
    const latency = eevdf.find((b) => b.name === 'pipe wake-up latency p50')!
    for (const b of [throughput, latency]) {
      expect(b.sampleCount).toBe(2)
      expect(b.ktstr!.runs.map((r) => r.scheduler)).toEqual(['eevdf', 'eevdf'])
    }
    // Throughput: hz is the spinners' million work units/s, the samples ns per work unit.
    expect(throughput.ktstr).toMatchObject({ metric: 'throughput', cgroup: 'spin' })
    const nsPerUnit = throughput.ktstr!.runs.map((r) => 1e9 / (r.workUnitsPerSec as number))
    expect(throughput.mean).toBeCloseTo(nsPerUnit.reduce((a, b) => a + b) / 2, 6)
    expect(throughput.hz).toBeCloseTo(1000 / throughput.mean, 6)
    for (const r of throughput.ktstr!.runs) expect(r.workUnits as number).toBeGreaterThan(1e6)
    // Latency: the samples are each run's wake-up latency p50 in µs.
    expect(latency.ktstr).toMatchObject({ metric: 'wakeLatencyP50', cgroup: 'pipe' })
    for (const r of latency.ktstr!.runs) {
      expect(r.wakeups as number).toBeGreaterThan(100)
      expect(r.wakeLatencyP50Us as number).toBeGreaterThan(0)
      expect(r.wakeLatencyP50Us as number).toBeLessThan(100_000)
    }
    expect(latency.mean).toBeCloseTo(latency.ktstr!.runs.reduce((a, r) => a + (r.wakeLatencyP50Us as number), 0) / 2, 6)
    console.log(`EEVDF: ${throughput.hz.toFixed(1)} M work units/s, wake-up p50 ${latency.mean.toFixed(1)} µs`)

    const cmp = await vitestBench(['--project', 'sched', '--compare', 'eevdf.json', '--outputJson', 'simple.json', 'mixed'], { SCHEDULER: 'scx_simple' })
    expect(cmp.code, cmp.out).toBe(0)
    const simple = benches(readReport('simple.json'))
    expect(simple.map((b) => b.name).sort()).toEqual(['pipe wake-up latency p50', 'spinner throughput'])
    for (const now of simple) {
      expect(now.ktstr!.runs.map((r) => r.scheduler)).toEqual(['scx_simple', 'scx_simple'])
      const before = eevdf.find((b) => b.id === now.id)!
      const ratio = (now.hz / before.hz).toFixed(2)
      // Vitest's compare rows: the current figures with the ratio (⇑ better, ⇓ a regression), then the baseline's.
      const row = new RegExp(`· ${now.name} .*\\[${ratio.replace('.', '\\.')}x\\] ${now.hz > before.hz ? '⇑' : '⇓'}\\n\\s+${now.name} .*\\(baseline\\)`)
      expect(cmp.out).toMatch(row)
      console.log(`${now.name}: scx_simple/EEVDF ${ratio}x`)
    }
    expect(strayQemus(project)).toEqual([])

    // The gate: exit 1 when a benchmark fell more than --max-drop % below its baseline.
    const file = (n: string) => path.join(project.dir, n)
    const gate = await runCli(['bench-gate', file('eevdf.json'), file('simple.json'), '--max-drop', '10'])
    const drops = simple.filter((now) => now.hz / eevdf.find((b) => b.id === now.id)!.hz < 0.9)
    console.log(gate.stdout)
    expect(gate.code, gate.stdout + gate.stderr).toBe(drops.length > 0 ? 1 : 0)
    for (const now of simple) expect(gate.stdout).toMatch(new RegExp(`^[✓✗] mixed\\.sched\\.bench\\.ts > .* > ${now.name}: [\\d.]+ hz against [\\d.]+ \\(\\d+\\.\\d\\dx\\)`, 'm'))
    if (drops.length) expect(gate.stdout).toContain(`ktstr: ${drops.length} of 2 benchmarks regressed more than 10% against ${file('eevdf.json')}`)
    const lenient = await runCli(['bench-gate', file('eevdf.json'), file('simple.json'), '--max-drop', '99'])
    expect(lenient.code, lenient.stdout).toBe(0)
  })
})
