/** The guest kernel's BTF for the monitor: the cached blob, parsed; a blob that does not parse is extracted again. */
import { type KernelBtfSource, kernelBtf } from '../../kernel/btf-cache.js'
import { log } from '../../util/log.js'
import { Btf } from './btf.js'
import { BtfError } from './errors.js'

export type LoadedKernelBtf = { ok: true; btf: Btf; file?: string; fromCache: boolean } | { ok: false; reason: string }

export function loadKernelBtf(kernel: KernelBtfSource): LoadedKernelBtf {
  let r = kernelBtf(kernel)
  for (let attempt = 0; ; attempt++) {
    if (!r.ok) return r
    try {
      return { ok: true, btf: Btf.parse(r.blob), fromCache: r.fromCache, ...(r.file ? { file: r.file } : {}) }
    } catch (e) {
      if (!(e instanceof BtfError)) throw e
      if (!r.fromCache || attempt > 0) return { ok: false, reason: `the BTF of kernel ${kernel.bzImage} is malformed: ${e.message}` }
      log.debug(`kernel BTF: cached ${r.file} does not parse (${e.message}); extracting it again`)
      r = kernelBtf(kernel, { refresh: true })
    }
  }
}
