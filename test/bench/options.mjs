// The bench's command line: `[--quick] [--json FILE] [GROUP]`, and paths every group uses.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const dist = (p) => path.join(repo, 'dist', p)
/** ktstr's CLI as built (`npm run bench` builds first). */
export const cli = dist('src/cli/main.js')

const args = process.argv.slice(2)
export const quick = args.includes('--quick')
const jsonAt = args.indexOf('--json')
export const jsonFile = path.resolve(jsonAt >= 0 ? args[jsonAt + 1] : 'bench-results.json')
/** The one row group to run, or undefined for all. */
export const only = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--json')

/** Repetitions of a measurement (median taken): fewer with --quick. */
export const reps = (full) => (quick ? Math.min(full, 3) : full)
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** The guest kernel the rows boot: KTSTR_KERNEL, or what `ktstr kernel path` resolves; '' if none. */
export function guestKernel() {
  return process.env.KTSTR_KERNEL || spawnSync(process.execPath, [cli, 'kernel', 'path'], { encoding: 'utf8' }).stdout.trim()
}

/** Wall ms of one run of `cmd args`, which must exit 0. */
export function timeIt(cmd, argv, env = {}, cwd = undefined) {
  const t0 = performance.now()
  const r = spawnSync(cmd, argv, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 })
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${argv.slice(0, 5).join(' ')} failed (${r.status ?? r.signal}): ${String(r.stderr).slice(-400)}`)
  return performance.now() - t0
}

/** `ktstr exec [flags] -- command...` with KTSTR_KERNEL set to `kernel`: its stdout, which must exit 0. */
export function execOut(kernel, flags, command) {
  const r = spawnSync(process.execPath, [cli, 'exec', ...flags, '--', ...command], {
    env: { ...process.env, KTSTR_KERNEL: kernel },
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 16 * 2 ** 20,
  })
  if (r.status !== 0) throw new Error(`ktstr exec ${flags.join(' ')} -- ${command.slice(0, 3).join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.slice(-400)}`)
  return r.stdout
}
