import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { type ElfInfo, isElf, readElf } from './elf.js'
import { LdCache } from './ldcache.js'

export interface ClosureOptions {
  /** Defaults to process.env.LD_LIBRARY_PATH. */
  ldLibraryPath?: string
  /** Defaults to /etc/ld.so.cache; `null` searches without a cache. */
  ldCache?: LdCache | null
  /** ld.so's built-in directories; defaults to the multiarch + lib64 + lib set for the binary's machine. */
  defaultDirs?: string[]
}

interface Loaded {
  path: string
  info: ElfInfo
  origin: string
  /** The object whose DT_NEEDED pulled this one in (ld.so walks this chain for DT_RPATH). */
  loader?: Loaded
}

const MULTIARCH: Record<number, string> = { 62: 'x86_64-linux-gnu', 183: 'aarch64-linux-gnu' }

/** The directories glibc searches last, for e_machine `machine` (Debian layout first, then upstream's). */
export function defaultLibDirs(machine: number): string[] {
  const ma = MULTIARCH[machine]
  const dirs = ma ? [`/lib/${ma}`, `/usr/lib/${ma}`] : []
  return [...dirs, '/lib64', '/usr/lib64', '/lib', '/usr/lib']
}

/**
 * The files ld.so would map to run each of `binaries`: the binaries themselves, their PT_INTERP and the
 * transitive DT_NEEDED closure, searched like ld.so (DT_RPATH unless DT_RUNPATH, LD_LIBRARY_PATH,
 * DT_RUNPATH, ld.so.cache, default dirs). Paths are returned as ld.so would open them (symlinks kept).
 */
export function libraryClosure(binaries: string[], opts: ClosureOptions = {}): string[] {
  const cache = opts.ldCache === undefined ? LdCache.load() : (opts.ldCache ?? undefined)
  const ldLibraryPath = opts.ldLibraryPath ?? process.env.LD_LIBRARY_PATH ?? ''
  const infos = new Map<string, ElfInfo>()
  const elf = (p: string): ElfInfo => {
    let i = infos.get(p)
    if (!i) infos.set(p, (i = readElf(p)))
    return i
  }
  const out: string[] = []
  const seen = new Set<string>()
  const emit = (p: string) => {
    if (!seen.has(p)) {
      seen.add(p)
      out.push(p)
    }
  }

  for (const bin of binaries) {
    const exe = path.resolve(bin)
    const info = elf(exe)
    emit(exe)
    const main: Loaded = { path: exe, info, origin: path.dirname(realpathOr(exe)) }
    // Objects already mapped, by the names a DT_NEEDED may use for them (soname and file name).
    const byName = new Map<string, Loaded>()
    const register = (o: Loaded) => {
      if (o.info.soname) byName.set(o.info.soname, o)
      byName.set(path.basename(o.path), o)
    }
    register(main)
    if (info.interpreter) {
      if (!fs.existsSync(info.interpreter)) {
        throw new KtstrError(`${exe} needs the ELF interpreter ${info.interpreter}, which does not exist on this host; install its libc or use a static build`)
      }
      emit(info.interpreter)
      register({ path: info.interpreter, info: elf(info.interpreter), origin: path.dirname(info.interpreter) })
    }
    const defaults = opts.defaultDirs ?? defaultLibDirs(info.machine)
    const llp = ldLibraryPath.split(/[:;]/).filter((d) => d !== '')

    const queue: Loaded[] = [main]
    while (queue.length > 0) {
      const obj = queue.shift()!
      for (const name of obj.info.needed) {
        if (byName.has(name)) continue
        const found = name.includes('/') ? path.resolve(name) : search(name, obj, main, llp, cache, defaults, info.machine, elf)
        if (!found || !fs.existsSync(found)) {
          throw new KtstrError(
            `${exe} needs ${name}${obj === main ? '' : ` (via ${obj.path})`}, which is not in its RPATH/RUNPATH, LD_LIBRARY_PATH, ` +
              `/etc/ld.so.cache or ${defaults.join(':')}; install the library or add its directory to LD_LIBRARY_PATH`,
          )
        }
        const lib: Loaded = { path: found, info: elf(found), origin: path.dirname(found), loader: obj }
        register(lib)
        byName.set(name, lib)
        emit(found)
        queue.push(lib)
      }
    }
  }
  return out
}

function search(
  name: string,
  obj: Loaded,
  main: Loaded,
  llp: string[],
  cache: LdCache | undefined,
  defaults: string[],
  machine: number,
  elf: (p: string) => ElfInfo,
): string | undefined {
  const tryDirs = (dirs: string[], origin: string): string | undefined => {
    for (const raw of dirs) {
      const dir = expandTokens(raw, origin)
      if (dir === undefined) continue
      const p = path.join(dir, name)
      if (fits(p, machine, elf)) return p
    }
    return undefined
  }
  // DT_RPATH of the object and of each loader up to the executable, only when the object has no DT_RUNPATH.
  if (obj.info.runpath.length === 0) {
    for (let o: Loaded | undefined = obj; o; o = o.loader) {
      const hit = tryDirs(o.info.rpath, o.origin)
      if (hit) return hit
    }
  }
  const hit = tryDirs(llp, main.origin) ?? tryDirs(obj.info.runpath, obj.origin)
  if (hit) return hit
  const cached = cache?.lookup(name, machine)
  if (cached && fits(cached, machine, elf)) return cached
  return tryDirs(defaults, main.origin)
}

/** ld.so skips files of the wrong class or machine and keeps searching (open_verify). */
function fits(p: string, machine: number, elf: (p: string) => ElfInfo): boolean {
  try {
    if (!fs.statSync(p).isFile() || !isElf(p)) return false
    return elf(p).machine === machine
  } catch {
    return false
  }
}

/** Expands $ORIGIN / ${ORIGIN}; a directory with another dynamic string token is skipped. */
function expandTokens(dir: string, origin: string): string | undefined {
  const out = dir.replace(/\$(\{ORIGIN\}|ORIGIN(?![A-Za-z0-9_]))/g, origin)
  if (out.includes('$')) {
    log.debug(`library search: skipping ${dir} (only $ORIGIN is supported)`)
    return undefined
  }
  return out
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p)
  } catch {
    return p
  }
}
