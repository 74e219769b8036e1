/** Linux cpulist notation ("0-3,8,10-11"), as in sysfs and cpuset.cpus. */
import { KtstrError } from './errors.js'

export function parseCpuList(text: string): number[] {
  const out: number[] = []
  const s = text.trim()
  if (s === '') return out
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim())
    if (!m) throw new KtstrError(`bad CPU list "${text}": expected a form like "0-3,6"`)
    const a = Number(m[1])
    const b = m[2] === undefined ? a : Number(m[2])
    if (b < a) throw new KtstrError(`bad CPU list "${text}": range ${part} runs backwards`)
    for (let c = a; c <= b; c++) out.push(c)
  }
  return [...new Set(out)].sort((x, y) => x - y)
}

/** [0,1,2,5] → "0-2,5". */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return parts.join(',')
}

export const intersect = (a: readonly number[], b: readonly number[]): number[] => {
  const set = new Set(b)
  return a.filter((c) => set.has(c))
}
