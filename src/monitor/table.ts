/** The monitor's samples as a compact per-CPU table (`ktstr exec --monitor`). */
import type { MonitorStatus } from './attach.js'
import { describeScx } from './scx-state.js'

export function monitorTable(status: MonitorStatus): string {
  if (!status.on) return `monitor: off (${status.reason})\n`
  const m = status.monitor
  const samples = m.samplesBetween()
  const span = samples.length > 1 ? ` over ${((samples.at(-1)!.t - samples[0]!.t) / 1000).toFixed(1)} s` : ''
  const scx = m.scxState()
  const head = [
    `monitor: ${samples.length} samples at ${m.hz} Hz${span}${scx ? `; sched_ext: ${describeScx(scx)}` : ''}${m.stall ? `; ${m.stall.message}` : ''}`,
    ...m.notes.map((n) => `monitor: ${n}`),
  ]
  const rows: string[][] = [['CPU', 'samples', 'max nr_running', 'max local DSQ', 'last current']]
  for (let cpu = 0; cpu < m.cpus; cpu++) {
    let whole = 0
    let maxNr = 0
    let maxDsq = 0
    let curr = '-'
    for (const s of samples) {
      const c = s.cpus[cpu]
      if (!c || c.partial) continue
      whole++
      maxNr = Math.max(maxNr, c.nrRunning)
      maxDsq = Math.max(maxDsq, c.localDsq)
      if (c.curr) curr = `pid ${c.curr.pid} ${c.curr.comm}`
    }
    rows.push([String(cpu), String(whole), String(maxNr), String(maxDsq), curr])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padStart(widths[i]!))).join('  ')
  return `${[...head, ...rows.map(line)].join('\n')}\n`
}
