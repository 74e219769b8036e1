/**
 * `ktstr kernel import DIR`: put a ready kernel (a folder with `bzImage`, its `config` or an
 * embedded one, and optionally `scx/`) into the cache, so resolution finds it without
 * KTSTR_KERNEL — e.g. a prebuilt kernel shared between machines.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { installKernelEntry, type KernelMeta, kernelsDir, readCachedKernel, tryLockKernelKey } from './cache.js'
import { type GuestKernel, kernelFromSpec } from './resolve.js'
import { listSchedulers } from './schedulers.js'

export function importKernel(dir: string): { key: string; kernel: GuestKernel; imported: boolean } {
  const src = kernelFromSpec(dir, 'option') // validates: bzImage present, sched_ext in its config
  const image = fs.readFileSync(src.bzImage)
  const version = /Linux\/\S+ (\S+) Kernel Configuration/.exec(configText(src))?.[1] ?? 'unknown'
  const key = `${version}-import-${createHash('sha256').update(image).digest('hex').slice(0, 10)}`
  const dest = path.join(kernelsDir(), key)
  if (readCachedKernel(dest)) return { key, kernel: kernelFromSpec(dest, 'cache'), imported: false }
  const schedulers = listSchedulers(src)
  const meta: KernelMeta = {
    key,
    version,
    source: `import:${path.resolve(dir)}`,
    createdAt: new Date().toISOString(),
    fragmentHash: '',
    schedulers,
  }
  const lock = tryLockKernelKey(key)
  if (!lock) throw new KtstrError(`another ktstr is writing kernel ${key} into the cache; run the import again when it is done`)
  try {
    installKernelEntry(
      dest,
      (tmp) => {
        fs.mkdirSync(path.join(tmp, 'scx'))
        fs.copyFileSync(src.bzImage, path.join(tmp, 'bzImage'))
        fs.writeFileSync(path.join(tmp, 'config'), configText(src))
        for (const s of schedulers) fs.copyFileSync(path.join(src.schedulersDir!, s), path.join(tmp, 'scx', s))
      },
      meta,
    )
  } finally {
    lock.release()
  }
  return { key, kernel: kernelFromSpec(dest, 'cache'), imported: true }
}

function configText(k: GuestKernel): string {
  const file = ['config', '.config'].map((n) => path.join(k.dir, n)).find((p) => fs.existsSync(p))
  if (file) return fs.readFileSync(file, 'utf8')
  // Embedded only: write it back out in .config form.
  return `${[...k.config].map(([key, v]) => (v === 'n' ? `# ${key} is not set` : `${key}=${v}`)).join('\n')}\n`
}

export function assertImportable(dir: string): void {
  if (!fs.existsSync(dir)) throw new KtstrError(`${dir} does not exist; give a folder holding bzImage (and config, scx/)`)
}
