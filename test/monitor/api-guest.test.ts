/**
 * The monitor/bpf test API in real guests under scx_qmap, through real Vitest with the ktstr pool:
 * examples/monitor.sched.test.ts (samples, maps, globals, a growing counter), bad input one line
 * each, a deliberately failing assertion whose failure carries the host's dump summary (the dump
 * holds scx_qmap's maps and per-CPU state), and a test spinning for ever whose timeout failure
 * still carries the monitor's last per-CPU samples. Three files, three boots, one Vitest run; and
 * `ktstr exec --dump DIR` of a command that fails (one more boot).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot, runCli, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject, type VitestRun } from '../helpers/vitest-run.js'

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'monitor-api')
let project: FixtureProject
let r: VitestRun

const dumpPath = (message: string) => /ktstr dump: (\S+\.json)/.exec(message)?.[1]
const results = (file: string) => r.json.testResults.find((t) => path.basename(t.name) === file)!

describe.skipIf(guestSkipReason)('monitor and bpf API in real guests (scx_qmap)', () => {
  beforeAll(async () => {
    project = fixtureProject(FIXTURE)
    fs.copyFileSync(path.join(repoRoot, 'examples', 'monitor.sched.test.ts'), path.join(project.dir, 'monitor.sched.test.ts'))
    r = await project.vitest(['run'], [])
  }, 400_000)
  afterAll(() => project?.remove())

  it('runs examples/monitor.sched.test.ts: samples, maps, globals, a counter that grows', () => {
    const ex = results('monitor.sched.test.ts')
    expect(ex.assertionResults.map((a) => [a.title, a.status, a.failureMessages.join('\n').slice(0, 2000)])).toEqual([
      ['the host samples every CPU while a run goes on', 'passed', ''],
      ["scx_qmap's maps and globals, decoded through BTF", 'passed', ''],
      ["scx_qmap's enqueue counter only grows while tasks run", 'passed', ''],
    ])
  })

  it('answers bad input with one line each', () => {
    const api = results('api.sched.test.ts')
    expect(api.assertionResults[0]).toMatchObject({ title: 'bad input: one line each', status: 'passed' })
    const lines = r.out.split('\n').filter((l) => l.startsWith('bad-input> '))
    console.info(lines.join('\n'))
    expect(lines).toHaveLength(6)
    expect(lines[0]).toMatch(/^bad-input> KtstrError: no BPF map named 'no_such_map': the guest's maps are .*cpu_ctx_stor/)
    expect(lines[3]).toMatch(/global 'slice_ns' is in \.rodata/)
  })

  it("puts the dump's summary in a failed assertion; the dump holds scx_qmap's maps and per-CPU state", () => {
    const failed = results('api.sched.test.ts').assertionResults[1]!
    expect(failed).toMatchObject({ title: 'fails on purpose: the dump holds the maps', status: 'failed' })
    const message = failed.failureMessages.join('\n')
    const summary = message
      .slice(message.indexOf('ktstr dump:'))
      .split('\n')
      .filter((l) => !/^\s+at /.test(l))
    console.info(message.slice(0, message.indexOf('\n    at ') >>> 0))
    expect(summary.length).toBeLessThanOrEqual(8)
    expect(summary.join('\n')).toMatch(/last sample \(\d+ kept\): CPU 0: nr_running \d+/)
    expect(summary.join('\n')).toMatch(/BPF maps: .*cpu_ctx_stor \(percpu_array\)/)
    const file = dumpPath(message)!
    expect(file.startsWith(path.join(project.dir, 'node_modules', '.cache', 'ktstr', 'dumps'))).toBe(true)
    const dump = JSON.parse(fs.readFileSync(file, 'utf8'))
    expect(dump.cause).toMatch(/a deliberate failure/)
    expect(dump.samples.at(-1).cpus.map((c: { cpu: number }) => c.cpu)).toEqual([0, 1])
    const cpuCtx = dump.maps.find((m: { info: { name: string } }) => m.info.name === 'cpu_ctx_stor')
    expect(cpuCtx.entries.length).toBeGreaterThan(0)
    expect(Object.keys(dump.globals)).toEqual(expect.arrayContaining(['bss', 'rodata']))
  })

  it('a test spinning for ever in the guest: the timeout carries the last per-CPU samples', () => {
    const spin = results('spin.sched.test.ts')
    const message = `${spin.message}\n${spin.assertionResults.flatMap((a) => a.failureMessages).join('\n')}`
    expect(message).toMatch(/did not finish within 40s/)
    expect(message).toMatch(/last sample \(\d+ kept\): CPU 0: nr_running \d+/)
    const dump = JSON.parse(fs.readFileSync(dumpPath(message)!, 'utf8'))
    expect(dump.samples.length).toBeGreaterThan(5)
    expect(strayQemus(project)).toEqual([])
  })

  it('ktstr exec --dump DIR: a failing command leaves a dump with the maps, and says where', { timeout: 300_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-dump-'))
    try {
      const c = await runCli(['exec', '--topology', '1n1l2c1t', '--scheduler', 'scx_qmap', '--dump', dir, '--', 'sh', '-c', 'sleep 1; exit 3'], { timeoutMs: 240_000 })
      expect(c.code).toBe(3)
      const lines = c.stderr.split('\n').filter((l) => l.startsWith('ktstr: '))
      expect(lines[0]).toMatch(new RegExp(`^ktstr: ktstr dump: ${dir}/exec-.*\\.json$`))
      expect(lines.length).toBeLessThanOrEqual(8)
      const dump = JSON.parse(fs.readFileSync(fs.readdirSync(dir).map((f) => path.join(dir, f))[0]!, 'utf8'))
      expect(dump.cause).toBe('the command exited with code 3')
      expect(dump.maps.map((m: { info: { name: string } }) => m.info.name)).toContain('cpu_ctx_stor')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
