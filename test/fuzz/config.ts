// Shared settings for the fuzz targets. `npm test` runs a small slice with a fixed seed (a few
// seconds, reproducible); `npm run fuzz` sets KTSTR_FUZZ_RUNS (100,000) and picks a random seed,
// printed with each target's case count so a failure can be replayed with KTSTR_FUZZ_SEED.
import fc from 'fast-check'
import { it } from 'vitest'

const SLICE_RUNS = 500
const SLICE_SEED = 0x6b747374 // "ktst"

function envInt(name: string): number | undefined {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${raw}: expected a positive whole number`)
  return n
}

const runs = envInt('KTSTR_FUZZ_RUNS')
/** A full fuzz run (`npm run fuzz`) rather than the slice in `npm test`. */
export const FULL_FUZZ = runs !== undefined
export const FUZZ_RUNS = runs ?? SLICE_RUNS
export const FUZZ_SEED = envInt('KTSTR_FUZZ_SEED') ?? (FULL_FUZZ ? Math.floor(Math.random() * 0x7fffffff) + 1 : SLICE_SEED)

/**
 * One fuzz target: checks `property` for FUZZ_RUNS cases. On failure the error carries
 * fast-check's report (seed, path, the shrunk counterexample); in a full run the case count and
 * wall time are printed.
 */
export function fuzz<Ts extends [unknown, ...unknown[]]>(name: string, property: () => fc.IProperty<Ts>): void {
  it(
    name,
    () => {
      const start = performance.now()
      const details = fc.check(property(), { numRuns: FUZZ_RUNS, seed: FUZZ_SEED })
      if (details.failed) {
        const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
        throw new Error(`${fc.defaultReportMessage(details) ?? `fuzz target "${name}" failed`}\nGot: ${cause}`)
      }
      if (FULL_FUZZ) {
        const s = ((performance.now() - start) / 1000).toFixed(1)
        process.stdout.write(`fuzz: ${name}: ${details.numRuns} cases passed (seed ${FUZZ_SEED}, ${s} s)\n`)
      }
    },
    // A full run is as long as it needs to be; the slice keeps the default budget.
    FULL_FUZZ ? 6 * 60 * 60_000 : undefined,
  )
}

/** Cuts `bytes` into chunks at the given points (any values; reduced modulo the length, empties kept). */
export function chunked(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let from = 0
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(from, p))
    from = p
  }
  return out
}

/** An error message a user sees as one line. */
export const isOneLine = (msg: string) => msg.length > 0 && !/[\r\n\u2028\u2029]/.test(msg)

/** A cheap assertion for hot fuzz loops (expect() costs more than the code under test). */
export function check(cond: unknown, what: string | (() => string)): asserts cond {
  if (!cond) throw new Error(typeof what === 'string' ? what : what())
}
