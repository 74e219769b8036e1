/**
 * `ktstr/plugin`: run Vitest test files inside booted guests.
 *
 *   plugins: [ktstr({ scheduler: 'scx_simple' })],
 *   test: { projects: [{ extends: true, test: { name: 'sched', include: ['**\/*.sched.test.ts'], pool: 'ktstr' } }] }
 */
import type { Plugin } from 'vitest/config'
import { routeSchedBenches } from './bench.js'
import { applyDefaultParallelism, type KtstrPoolOptions, ktstrPool, POOL_NAME, runtimeModules, snapshotEnvironmentPath } from './pool.js'
import { specFromOptions } from './spec.js'

export { type GauntletOptions, type GauntletProject, ktstrGauntlet } from './gauntlet.js'
export type { BootGuest } from './pool-worker.js'
export type { KtstrOptions } from './spec.js'
export { type KtstrPoolOptions, ktstrPool }

/** Registers the `ktstr` pool, so `pool: 'ktstr'` and `vitest --pool=ktstr` work. */
export function ktstr(options: KtstrPoolOptions = {}): Plugin {
  const pool = ktstrPool(options)
  const { boot: _boot, ...vmOptions } = options
  const defaults = specFromOptions(vmOptions)
  return {
    name: 'vitest:ktstr',
    // Before Vitest resolves the config: its module resolver keeps the list it found then.
    config: () => ({ test: { server: { deps: { external: [runtimeModules()] } } } }),
    configureVitest({ project, vitest }) {
      routeSchedBenches(project, project.config.pool === POOL_NAME)
      if (project.config.pool !== POOL_NAME) return
      // Watch mode keeps a guest restored ahead of the next run: it goes when Vitest does.
      vitest.onClose(async () => (await import('../src/vm/warm/standby.js')).dropStandby())
      project.config.poolRunner ??= pool
      project.config.snapshotEnvironment ??= snapshotEnvironmentPath()
      applyDefaultParallelism(project, defaults)
    },
  }
}
