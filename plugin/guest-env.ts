/**
 * The environment a guest's Vitest worker gets. Vitest hands a worker the host's whole process.env
 * plus its own keys; host paths and secrets mean nothing in the guest, so only what Vitest or the
 * config set, and a few locale/colour/CI keys, go along.
 */
const PASS = /^(NODE_ENV|TEST|VITEST|VITEST_.*|TZ|LANG|LANGUAGE|LC_.*|TERM|COLORTERM|FORCE_COLOR|NO_COLOR|CI|DEBUG|KTSTR_.*)$/

export function guestEnv(workerEnv: Partial<NodeJS.ProcessEnv>, hostEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(workerEnv)) {
    if (v === undefined) continue
    // Different from the host's own value: Vitest or the project's `env` config set it.
    if (hostEnv[k] !== v || PASS.test(k)) out[k] = v
  }
  return out
}
