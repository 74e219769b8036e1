import { createRequire } from 'node:module'
import type Koffi from 'koffi'

export type KoffiModule = typeof Koffi

let cached: KoffiModule | undefined

/**
 * koffi, loaded on first use. `import koffi from 'koffi'` would load the native addon at import
 * time, so a machine without it (or with an install that dropped optional dependencies) would fail
 * merely by importing a module that never calls into C.
 */
export function koffi(): KoffiModule {
  if (cached) return cached
  try {
    cached = createRequire(import.meta.url)('koffi') as KoffiModule
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e)
    throw new Error(`cannot load koffi's native module (${why}); reinstall dependencies with optional dependencies enabled (not --omit=optional)`, { cause: e })
  }
  return cached
}
