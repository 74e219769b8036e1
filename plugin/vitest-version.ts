/**
 * The Vitest versions the pool works with. It speaks Vitest's worker protocol (PoolWorker,
 * WorkerRequest, `vitest/worker`) and uses `vitest/runtime`, which Vitest changes between minors of
 * 4.0 and majors: 4.0 sends a different `start` message and has no `vitest/runtime`; Vitest 5 needs
 * Node >= 22 and is untested. Keep SUPPORTED_VITEST in step with package.json's peerDependencies.
 */
import { inspect } from 'node:util'
import { version } from 'vitest/node'
import { KtstrError } from '../src/util/errors.js'

export const SUPPORTED_VITEST = '>=4.1.0 <5'

/** Refuses a Vitest outside SUPPORTED_VITEST, with one line naming the fix. */
export function assertSupportedVitest(found: string = version): void {
  const [major, minor] = found.split('.').map((n) => Number.parseInt(n, 10))
  if (major === 4 && minor !== undefined && minor >= 1) return
  const e = new KtstrError(`ktstr supports Vitest ${SUPPORTED_VITEST}, this project has Vitest ${found}: npm install -D vitest@4`)
  // Vitest prints a startup error with util.inspect: show the one line, not a stack.
  Object.defineProperty(e, inspect.custom, { value: () => `${e.name}: ${e.message}` })
  throw e
}
