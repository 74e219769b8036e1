// The bench's rows: each a value, its baseline from the same run, and how the ratio reads.

/** @type {{ row: string, value: number | null, baseline: number | null, unit: string, ratio: number | null, note?: string }[]} */
export const rows = []

/** One table row: `value` vs `baseline` (same unit, same run); `note` says what the baseline is or why the row did not run. */
export function addRow(row, value, baseline, unit, note) {
  const ratio = value != null && baseline ? value / baseline : null
  rows.push({ row, value, baseline, unit, ratio, ...(note ? { note } : {}) })
}

/** A row that did not run here, and why. */
export const notRun = (row, unit, why) => addRow(row, null, null, unit, `not run: ${why}`)

const fmt = (n) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2))

/** The rows as one Markdown table (what the README shows). */
export function table() {
  const cells = rows.map((r) => [
    r.row,
    r.value == null ? '-' : `${fmt(r.value)} ${r.unit}`,
    r.baseline == null ? '-' : `${fmt(r.baseline)} ${r.unit}`,
    r.ratio == null ? '-' : r.ratio.toFixed(2),
    r.note ?? '',
  ])
  const head = ['row', 'value', 'baseline', 'ratio', 'baseline is / note']
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...cells.map(line)].join('\n')
}
