/** Durations in the test API: a number of milliseconds, or a string such as '500ms', '2s', '1.5s', '1m'. */
import { KtstrError } from '../protocol/errors.js'

export type Duration = number | `${number}ms` | `${number}s` | `${number}m` | string

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 }

export function parseDuration(d: Duration, what = 'duration'): number {
  if (typeof d === 'number') {
    if (Number.isFinite(d) && d >= 0) return d
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$/.exec(d)
    if (m) return Number(m[1]) * UNIT_MS[m[2]!]!
  }
  throw new KtstrError(`bad ${what} ${JSON.stringify(d)}: use milliseconds (e.g. 1500) or a string like '500ms', '2s', '1m'`)
}

export function formatMs(ms: number): string {
  return ms >= 10_000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${Math.round(ms)} ms`
}
