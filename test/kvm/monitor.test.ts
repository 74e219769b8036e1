/**
 * The host monitor on our VMM (`--backend kvm`), two inner boots under scx_qmap: its stall
 * watchdog ends `scx_qmap -t 2` with spinners before scx_qmap's own 5 s watchdog; then spinners
 * pinned to CPU 1 load CPU 1 only in `--monitor`'s table, and the command's failure leaves a
 * `--dump` with scx_qmap's maps and .bss globals. The VMM runs in ktstr's own process: the
 * monitor reads guest RAM from its main thread while the vCPU threads run the guest.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { BOOT, exec, skipReason } from './helpers.js'

const TWO_CPUS = ['--topology', '1n1l2c1t']

describe.skipIf(skipReason)('the host monitor on our VMM', () => {
  it("scx_qmap -t 2 with spinners: the host's stall line names a pid before scx_qmap's watchdog", { timeout: BOOT }, async () => {
    const t0 = Date.now()
    const r = await exec([...TWO_CPUS, '--scheduler', 'scx_qmap', '--sched-args=-t 2'], ['sh', '-c', 'for i in 1 2 3 4; do (while :; do :; done) & done; sleep 60'])
    console.log(
      `stall run: ${((Date.now() - t0) / 1000).toFixed(1)} s\n${r.stderr
        .split('\n')
        .filter((l) => l.startsWith('ktstr: '))
        .join('\n')}`,
    )
    const line = /^ktstr: (stall: pid \d+ \(.+\) runnable (\d+\.\d) s on CPU [01] without running; CPU [01] current: pid \d+ \S+)$/m.exec(r.stderr)
    expect(line, r.stderr).not.toBeNull()
    // sched_ext ejects scx_qmap after 5 s: the host saw the stall first.
    expect(Number(line![2])).toBeLessThan(5)
    expect(r.stderr).not.toMatch(/exited while the guest was running/)
    expect(r.code).toBe(125)
  })

  it('--monitor shows spinners pinned to CPU 1 on CPU 1 only; --dump of the failing command lists the maps and .bss', { timeout: BOOT }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-kvm-dump-'))
    try {
      const script = 'p=; for i in 1 2 3 4; do taskset -c 1 sh -c "while :; do :; done" & p="$p $!"; done; echo $p; sleep 4; kill $p; wait; exit 3'
      const t0 = Date.now()
      const r = await exec([...TWO_CPUS, '--scheduler', 'scx_qmap', '--monitor', '--dump', dir], ['sh', '-c', script])
      const table = r.stderr.slice(r.stderr.indexOf('monitor: '))
      console.log(
        `pinned run: ${((Date.now() - t0) / 1000).toFixed(1)} s\n${r.stderr
          .split('\n')
          .filter((l) => l.startsWith('ktstr: '))
          .join('\n')}\n${table}`,
      )
      expect(r.code).toBe(3)
      // CPU  samples  max nr_running  max local DSQ  last current
      const rows = [...table.matchAll(/^ *([01]) +(\d+) +(\d+) +(\d+) +(.+)$/gm)].map((m) => ({ cpu: Number(m[1]), samples: Number(m[2]), maxNr: Number(m[3]) }))
      expect(
        rows.map((row) => row.cpu),
        table,
      ).toEqual([0, 1])
      expect(rows[0]!.samples).toBeGreaterThan(20) // 4 s and more at 10 Hz
      expect(rows[1]!.maxNr).toBeGreaterThanOrEqual(4)

      const summary = r.stderr.split('\n').filter((l) => l.startsWith('ktstr: '))
      expect(summary[0]).toMatch(new RegExp(`^ktstr: ktstr dump: ${dir}/exec-.*\\.json$`))
      const files = fs.readdirSync(dir)
      expect(files).toHaveLength(1)
      const dump = JSON.parse(fs.readFileSync(path.join(dir, files[0]!), 'utf8'))
      expect(dump.cause).toBe('the command exited with code 3')
      const maps = dump.maps.map((m: { info: { name: string; type: string } }) => `${m.info.name} ${m.info.type}`)
      expect(maps).toEqual(expect.arrayContaining(['cpu_ctx_stor percpu_array', 'scx_qmap.bss array']))
      expect(Object.keys(dump.globals.bss)).toEqual(expect.arrayContaining(['nr_enqueued', 'nr_dispatched']))
      expect(Number(dump.globals.bss.nr_enqueued)).toBeGreaterThan(0)
      // The kvm backend's vCPU registers, read by the monitor about once a second.
      expect(dump.vcpus[0].regs.rip).toMatch(/^0x[0-9a-f]+$/)

      // The dump's samples (the last 2 s before the exit, while the four spinners ran): a spinner
      // runs or waits on CPU 1 only. (Over the whole run CPU 0 too saw 4 tasks at once: the
      // subshells forked there before taskset moved them.)
      const spinners = r.stdout.trim().split(/\s+/).map(Number)
      expect(spinners).toHaveLength(4)
      type Cpu = { nrRunning: number; curr?: { pid: number }; runnable?: { pid: number }[] }
      const samples: { cpus: Cpu[] }[] = dump.samples
      expect(samples.length).toBeGreaterThan(10)
      const onCpu = (c: Cpu) => [c.curr?.pid, ...(c.runnable ?? []).map((t) => t.pid)].filter((pid) => spinners.includes(pid!))
      expect(samples.flatMap((s) => onCpu(s.cpus[0]!))).toEqual([])
      expect(samples.filter((s) => onCpu(s.cpus[1]!).length > 0 && s.cpus[1]!.nrRunning >= 4).length).toBeGreaterThanOrEqual(samples.length / 2)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
