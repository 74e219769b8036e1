import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { IkconfigError, ikconfigFromBzImage } from './ikconfig.js'

/** Kernel config as `CONFIG_NAME → value`; `# CONFIG_X is not set` becomes `n`. Values stay as written (strings keep quotes). */
export type KernelConfig = Map<string, string>

const SET = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/
const UNSET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/

export function parseKernelConfig(text: string): KernelConfig {
  const config: KernelConfig = new Map()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    const set = SET.exec(line)
    if (set) config.set(set[1]!, set[2]!)
    else {
      const unset = UNSET.exec(line)
      if (unset) config.set(unset[1]!, 'n')
    }
  }
  return config
}

/** Where a kernel's config may sit: beside the bzImage, or at the root of a built tree (arch/x86/boot/bzImage). */
export function configCandidates(bzImage: string): string[] {
  const dir = path.dirname(bzImage)
  const out = [path.join(dir, 'config'), path.join(dir, '.config')]
  if (dir.endsWith(path.join('arch', 'x86', 'boot'))) out.push(path.join(dir, '..', '..', '..', '.config'))
  return out
}

export interface ReadConfigResult {
  config: KernelConfig
  /** The file it came from, or `embedded` for IKCONFIG. */
  source: string
}

/** Read a kernel's config from a file beside the bzImage, else from its embedded IKCONFIG. */
export function readKernelConfig(bzImage: string): ReadConfigResult {
  for (const file of configCandidates(bzImage)) {
    if (!fs.existsSync(file)) continue
    try {
      return { config: parseKernelConfig(fs.readFileSync(file, 'utf8')), source: file }
    } catch (e) {
      throw new KtstrError(`cannot read kernel config ${file}: ${(e as Error).message}`)
    }
  }
  let image: Buffer
  try {
    image = fs.readFileSync(bzImage)
  } catch (e) {
    throw new KtstrError(`cannot read kernel image ${bzImage}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  try {
    const config = parseKernelConfig(ikconfigFromBzImage(image))
    log.debug(`kernel config of ${bzImage} read from its embedded IKCONFIG`)
    return { config, source: 'embedded' }
  } catch (e) {
    if (!(e instanceof IkconfigError)) throw e
    throw new KtstrError(`cannot read the config of kernel ${bzImage}: ${e.message}; put its .config beside it as ${path.join(path.dirname(bzImage), 'config')}`)
  }
}
