/**
 * Build step after `tsc`: bundle the guest init (dist/runtime/init/main.js and the modules it
 * imports, ~30) into the one file the kernel starts as PID 1, dist/runtime/init/init.js (INIT_BUNDLE).
 * A cold guest then loads one module instead of ~30: each is a file to resolve, read and compile on
 * a CPU that, under TCG, translates every instruction it runs for the first time; measured here,
 * the init reached its hello 0.4–1.3 s sooner. The test API (imported dynamically from ../index.js
 * by a template) stays outside, as do node's modules and koffi (loaded with require).
 * Run as `node dist/runtime/init/build-init.js` (package.json build/prepare).
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { rollup } from 'rollup'

/** Next to main.js, so the relative imports left in it (../index.js) mean the same. */
export const INIT_BUNDLE = 'init.js'

const here = path.dirname(fileURLToPath(import.meta.url))

export async function buildInit(dir = here): Promise<string> {
  const input = path.join(dir, 'main.js')
  const out = path.join(dir, INIT_BUNDLE)
  const testApi = path.resolve(dir, '..', 'index.js')
  const bundle = await rollup({
    input,
    external: (id) => id.startsWith('node:') || id === testApi,
    onwarn: (w) => {
      // import(mode.workerEntry): a path known only at run time, imported as it is.
      if (w.code !== 'UNRESOLVED_IMPORT' && w.code !== 'DYNAMIC_IMPORT_VARIABLE') throw new Error(`ktstr build: bundling the guest init: ${w.message}`)
    },
  })
  try {
    await bundle.write({ file: out, format: 'es', sourcemap: false })
  } finally {
    await bundle.close()
  }
  return out
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    await buildInit()
  } catch (e) {
    process.stderr.write(`ktstr build: ${(e as Error).message}\n`)
    process.exit(1)
  }
}
