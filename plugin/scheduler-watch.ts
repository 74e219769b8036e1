/**
 * Watch mode for scheduler binaries: when a scheduler a sched test file ran under changes on disk
 * (a rebuilt scx_* or a user's own scheduler), Vitest re-runs the files that use it — and only
 * those — in fresh guests. Files are recorded as they are scheduled; the binaries are added to
 * Vite's watcher and a watch trigger maps a change back to its files.
 */
import type { Vitest } from 'vitest/node'
import { resolveKernel } from '../src/kernel/resolve.js'
import { resolveScheduler } from '../src/kernel/schedulers.js'
import { log } from '../src/util/log.js'

/** Resolved scheduler binary → test files that ran under it. */
const users = new Map<string, Set<string>>()
const hooked = new WeakSet<Vitest>()

export function watchSchedulerOf(vitest: Vitest, spec: { kernel?: string; scheduler?: string | null }, files: string[]): void {
  if (!spec.scheduler || !vitest.config.watch) return
  hook(vitest)
  void resolveKernel(spec.kernel)
    .then((kernel) => resolveScheduler(kernel, spec.scheduler!).path)
    .then((binary) => {
      let set = users.get(binary)
      if (!set) {
        users.set(binary, (set = new Set()))
        vitest.vite.watcher.add(binary)
      }
      for (const f of files) set.add(f)
    })
    .catch((e: Error) => log.debug(`scheduler watch: ${e.message}`)) // the boot reports bad input itself
}

function hook(vitest: Vitest): void {
  if (hooked.has(vitest)) return
  hooked.add(vitest)
  const trigger = {
    pattern: /./,
    testsToRun: (file: string) => {
      const hit = users.get(file)
      return hit?.size ? [...hit] : undefined
    },
  }
  vitest.config.watchTriggerPatterns = [...(vitest.config.watchTriggerPatterns ?? []), trigger]
}
