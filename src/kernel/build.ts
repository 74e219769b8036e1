import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import type { FileLock } from '../util/file-lock.js'
import { cacheRoot, packageRoot } from '../util/paths.js'
import { Apt, EXTRA_SUITES } from './apt.js'
import { BuildLog, Runner } from './build-log.js'
import { buildKey, builtFiles, bzImageCommand, configureCommands, type MakePlan, schedulersCommand, sha256, upstreamVersion } from './build-plan.js'
import { installKernelEntry, type KernelMeta, kernelsDir, lockKernelKey, readCachedKernel } from './cache.js'
import { parseKernelConfig } from './config.js'
import { DEBIAN_SOURCE_PACKAGE, type DebianSource, locateDebianSource, unpackDebianSource } from './debian-source.js'
import { checkLocalTree, localSourceIdentity } from './local-source.js'
import { ensurePahole } from './pahole.js'
import type { BuildEvent, BuildPhase } from './progress.js'
import { missingRequired, unmetFragmentSettings } from './required.js'
import { type GuestKernel, openKernel } from './resolve.js'
import { ensureToolchain } from './toolchain.js'

export interface BuildOptions {
  /** A kernel source tree (Linux >= 6.12, clean: the build goes out of tree), or `debian` for linux-source-6.12. */
  source: string
  jobs?: number
  /** Rebuild even when the cache already holds this key. */
  force?: boolean
  onProgress?: (e: BuildEvent) => void
}

/** A build that failed in `phase`; `tail` holds the last lines of the log at `logPath`. */
export class BuildFailure extends KtstrError {
  constructor(
    readonly phase: BuildPhase,
    readonly logPath: string,
    readonly tail: string[],
    reason: string,
  ) {
    super(`kernel build failed during ${phase}: ${reason} (full log: ${logPath})`)
  }
}

export function fragmentPath(): string {
  return path.join(packageRoot(), 'src', 'kernel', 'kconfig.fragment')
}

interface SourcePlan {
  kind: 'debian' | 'local'
  identity: string
  version: string
  debian?: DebianSource
  localDir?: string
}

/** Build a sched_ext guest kernel and its example schedulers into `<cache>/kernels/<key>/`. */
export async function buildKernel(opts: BuildOptions): Promise<GuestKernel> {
  if (process.arch !== 'x64') throw new KtstrError(`ktstr kernel build supports x86_64 hosts only (this is ${process.arch})`)
  const emit = opts.onProgress ?? (() => {})
  const logPath = path.join(cacheRoot(), 'logs', `kernel-build-${new Date().toISOString().replace(/[:.]/g, '-')}.log`)
  const log = new BuildLog(logPath)
  const run = new Runner(log, (line) => emit({ type: 'output', line }))
  const timings: Partial<Record<BuildPhase, number>> = {}
  let current: BuildPhase = 'prepare'
  const phase = async <T>(name: BuildPhase, fn: () => Promise<T>): Promise<T> => {
    current = name
    emit({ type: 'phase-start', phase: name })
    log.write(`\n==== ${name} (${new Date().toISOString()}) ====\n`)
    const t0 = performance.now()
    const result = await fn()
    const seconds = (performance.now() - t0) / 1000
    timings[name] = Math.round(seconds)
    log.write(`==== ${name} done in ${seconds.toFixed(1)} s ====\n`)
    emit({ type: 'phase-end', phase: name, seconds })
    return result
  }
  const note = (message: string) => {
    log.write(`note: ${message}\n`)
    emit({ type: 'note', message })
  }

  let keyLock: FileLock | undefined
  try {
    const fragmentFile = fragmentPath()
    const fragment = fs.readFileSync(fragmentFile, 'utf8')
    const systemApt = Apt.system()
    let extra: Apt | undefined
    const extraApt = () => (extra ??= Apt.extra(EXTRA_SUITES))

    const src = await phase('prepare', async (): Promise<SourcePlan> => {
      if (opts.source === 'debian') {
        const debian = await locateDebianSource(run, systemApt, extraApt)
        return {
          kind: 'debian',
          identity: `debian:${DEBIAN_SOURCE_PACKAGE}=${debian.packageVersion}`,
          version: upstreamVersion(debian.packageVersion),
          debian,
        }
      }
      const localDir = path.resolve(process.cwd(), opts.source)
      const version = checkLocalTree(localDir)
      return { kind: 'local', identity: localSourceIdentity(localDir), version, localDir }
    })
    const key = buildKey(src.version, src.kind, src.identity, fragment)
    const finalDir = path.join(kernelsDir(), key)
    log.write(`key ${key} for ${src.identity}\n`)
    if (!opts.force && readCachedKernel(finalDir)) {
      note(`kernel ${key} is already built (${finalDir}); use --force to rebuild`)
      return openKernel(path.join(finalDir, 'bzImage'), finalDir, 'cache', key)
    }
    // Builds of one key share the build folder: one at a time; a second one waits, then reuses the result.
    keyLock = await lockKernelKey(key, (pid) =>
      note(`another build of kernel ${key} is running${pid ? ` (pid ${pid})` : ''}; waiting for it to finish (stop it to build here instead)`),
    )
    if (!opts.force && readCachedKernel(finalDir)) {
      note(`kernel ${key} was built meanwhile by the other build (${finalDir})`)
      return openKernel(path.join(finalDir, 'bzImage'), finalDir, 'cache', key)
    }

    const clang = await phase('toolchain', () => ensureToolchain(run, systemApt))
    const pahole = await phase('pahole', () => ensurePahole(run, systemApt, extraApt))
    const srcDir = src.debian ? await phase('source', () => unpackDebianSource(run, src.debian!)) : src.localDir!
    const buildDir = path.join(cacheRoot(), 'build', key)
    const plan: MakePlan = {
      srcDir,
      outDir: path.join(buildDir, 'kbuild'),
      scxOutDir: path.join(buildDir, 'sched_ext'),
      fragment: fragmentFile,
      pahole,
      clang: clang.clang,
      llvmStrip: clang.llvmStrip,
      jobs: opts.jobs ?? os.availableParallelism(),
    }
    fs.mkdirSync(plan.outDir, { recursive: true })
    fs.mkdirSync(plan.scxOutDir, { recursive: true })
    const files = builtFiles(plan)
    const verify = (when: string) => {
      const config = parseKernelConfig(fs.readFileSync(files.config, 'utf8'))
      const missing = missingRequired(config)
      if (missing.length) throw new KtstrError(`required options not =y ${when}: ${missing.join(', ')} (DEBUG_INFO_BTF and SCHED_CLASS_EXT need pahole >= 1.25; see the log)`)
      const unmet = unmetFragmentSettings(parseKernelConfig(fragment), config)
      if (unmet.length) note(`${unmet.length} fragment setting(s) did not stick ${when} (not required): ${unmet.join(', ')}`)
    }

    await phase('configure', async () => {
      for (const c of configureCommands(plan)) await run.run(c)
      verify('after make olddefconfig')
    })
    await phase('bzImage', async () => {
      await run.run(bzImageCommand(plan))
      verify('in the built .config')
    })
    const schedulers = await phase('schedulers', async () => {
      await run.run(schedulersCommand(plan))
      const names = fs
        .readdirSync(files.schedulersDir)
        .filter((n) => n.startsWith('scx_'))
        .sort()
      if (!names.length) throw new KtstrError(`tools/sched_ext built no scx_* binaries in ${files.schedulersDir}`)
      return names
    })
    return await phase('install', async () => {
      const meta: KernelMeta & { timings: typeof timings; log: string; toolchain: Record<string, string> } = {
        key,
        version: src.version,
        source: src.identity,
        createdAt: new Date().toISOString(),
        fragmentHash: sha256(fragment),
        schedulers,
        timings,
        log: logPath,
        toolchain: { pahole, clang: clang.clang },
      }
      installEntry(finalDir, files, schedulers, fragment, meta)
      return openKernel(path.join(finalDir, 'bzImage'), finalDir, 'cache', key)
    })
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    const tail = log.tail(20)
    log.write(`\nFAILED during ${current}: ${reason}\n`)
    // A bad --source or a missing tool is the user's to fix and the message says how; anything else needs the log.
    if (e instanceof KtstrError && (current === 'prepare' || current === 'toolchain' || current === 'pahole')) throw e
    throw new BuildFailure(current, logPath, tail, reason)
  } finally {
    keyLock?.release()
    log.close()
  }
}

/** Copies the results into the cache entry `finalDir` (see installKernelEntry). */
function installEntry(finalDir: string, files: ReturnType<typeof builtFiles>, schedulers: string[], fragment: string, meta: KernelMeta): void {
  installKernelEntry(
    finalDir,
    (tmp) => {
      fs.mkdirSync(path.join(tmp, 'scx'))
      fs.copyFileSync(files.bzImage, path.join(tmp, 'bzImage'))
      fs.copyFileSync(files.config, path.join(tmp, 'config'))
      for (const s of schedulers) {
        fs.copyFileSync(path.join(files.schedulersDir, s), path.join(tmp, 'scx', s))
        fs.chmodSync(path.join(tmp, 'scx', s), 0o755)
      }
      fs.writeFileSync(path.join(tmp, 'kconfig.fragment'), fragment)
    },
    meta,
  )
}
