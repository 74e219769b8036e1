/**
 * `ktstr bench-gate BASELINE.json CURRENT.json [--max-drop PCT]`: the regression gate over two
 * `vitest bench --outputJson` reports. `vitest bench --compare` shows the ratios and exits 0 all the
 * same; this fails (exit 1) when a benchmark's hz fell more than PCT % below its baseline. Benchmarks
 * are matched by Vitest's id (file, project and position), so both runs must run the same files.
 */
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { KtstrError } from '../util/errors.js'

export const BENCH_GATE_USAGE = `usage: ktstr bench-gate BASELINE.json CURRENT.json [--max-drop PCT]

  fails when a benchmark's hz (higher is better, as with ktstr's schedBench) fell more than PCT %
  (default 10) below the baseline's; the reports are vitest bench --outputJson files`

interface Bench {
  id: string
  name: string
  hz: number
  group: string
}

export function benchGateCommand(argv: string[]): number {
  const { values, positionals } = parseArgs({ args: argv, options: { 'max-drop': { type: 'string' } }, allowPositionals: true })
  if (positionals.length !== 2) throw new KtstrError(`bench-gate needs two reports, got ${positionals.length}; ${BENCH_GATE_USAGE.split('\n')[0]}`)
  const maxDrop = Number(values['max-drop'] ?? 10)
  if (!Number.isFinite(maxDrop) || maxDrop < 0 || maxDrop >= 100)
    throw new KtstrError(`bad --max-drop ${JSON.stringify(values['max-drop'])}: give a percentage from 0 to 99, e.g. --max-drop 10`)
  const [baseFile, currentFile] = positionals as [string, string]
  const baseline = new Map(readReport(baseFile).map((b) => [b.id, b]))
  const current = readReport(currentFile)
  let regressed = 0
  let compared = 0
  for (const now of current) {
    const label = `${now.group} > ${now.name}`
    const before = baseline.get(now.id)
    if (!before) {
      process.stdout.write(`  ${label}: ${fmt(now.hz)} hz, not in ${path.basename(baseFile)}\n`)
      continue
    }
    compared++
    const ratio = now.hz / before.hz
    const bad = ratio < 1 - maxDrop / 100
    if (bad) regressed++
    const verdict = bad ? `more than ${maxDrop}% below the baseline` : 'ok'
    process.stdout.write(`${bad ? '✗' : '✓'} ${label}: ${fmt(now.hz)} hz against ${fmt(before.hz)} (${ratio.toFixed(2)}x) ${verdict}\n`)
  }
  if (compared === 0) throw new KtstrError(`no benchmark of ${currentFile} is in ${baseFile}; compare reports of the same files and projects`)
  if (regressed > 0) {
    process.stdout.write(`ktstr: ${regressed} of ${compared} benchmarks regressed more than ${maxDrop}% against ${baseFile}\n`)
    return 1
  }
  return 0
}

/** The benchmarks of a `vitest bench --outputJson` report; anything else is refused in one line. */
function readReport(file: string): Bench[] {
  let json: unknown
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (e) {
    throw new KtstrError(`cannot read ${file}: ${(e as Error).message.split('\n')[0]}; write it with vitest bench --outputJson ${file}`)
  }
  const files = (json as { files?: unknown })?.files
  const isReport = Array.isArray(files) && files.every((f) => typeof f?.filepath === 'string' && Array.isArray(f.groups))
  if (!isReport) throw new KtstrError(`${file} is not a vitest bench --outputJson report (no files[].groups); write it with vitest bench --outputJson ${file}`)
  const out: Bench[] = []
  for (const f of files as { groups: { fullName?: string; benchmarks?: Partial<Bench>[] }[] }[]) {
    for (const g of f.groups) {
      for (const b of g.benchmarks ?? []) {
        if (typeof b.id !== 'string' || typeof b.hz !== 'number') throw new KtstrError(`${file} has a benchmark without id or hz; write it with vitest bench --outputJson ${file}`)
        out.push({ id: b.id, name: String(b.name), hz: b.hz, group: String(g.fullName) })
      }
    }
  }
  return out
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(2) : n.toPrecision(4)
}
