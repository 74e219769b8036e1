import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { cacheRoot } from '../util/paths.js'
import { findDebianMirror, parseAptSources, parseOsRelease, parsePolicyCandidate, readSystemSourceFiles, renderExtraSources } from './apt-sources.js'
import type { Runner } from './build-log.js'

/**
 * apt-get/apt-cache over either the machine's own sources (`opts` empty) or a private state that
 * holds only extra suites of the machine's Debian mirror; the private one never touches /etc/apt
 * or the system's package lists, and is only used to download .debs.
 */
export class Apt {
  private updated = false

  private constructor(
    readonly opts: string[],
    private readonly stateDir?: string,
  ) {}

  static system(): Apt {
    return new Apt([])
  }

  /** Suites of the machine's Debian mirror that the machine itself does not list (e.g. trixie on bookworm). */
  static extra(suites: string[], etcApt = '/etc/apt', osRelease = '/etc/os-release'): Apt {
    let os: ReturnType<typeof parseOsRelease> = {}
    try {
      os = parseOsRelease(fs.readFileSync(osRelease, 'utf8'))
    } catch {
      // handled below
    }
    if (os.id !== 'debian' || !os.codename) throw new KtstrError('`--source debian` needs a Debian host (apt with a Debian mirror); pass --source <kernel tree> instead')
    const mirror = findDebianMirror(parseAptSources(readSystemSourceFiles(etcApt)), os.codename)
    if (!mirror) throw new KtstrError(`no apt source for Debian ${os.codename} (main) found in ${etcApt}; add one, or pass --source <kernel tree>`)
    const wanted = suites.filter((s) => s !== os.codename)
    const dir = path.join(cacheRoot(), 'apt')
    for (const d of ['lists/partial', 'cache/archives/partial', 'sources.list.d']) fs.mkdirSync(path.join(dir, d), { recursive: true })
    const sourcesFile = path.join(dir, 'extra.sources')
    fs.writeFileSync(sourcesFile, renderExtraSources(mirror, wanted))
    return new Apt(
      [
        '-o',
        `Dir::Etc::SourceList=${sourcesFile}`,
        '-o',
        `Dir::Etc::SourceParts=${path.join(dir, 'sources.list.d')}`,
        '-o',
        `Dir::State::Lists=${path.join(dir, 'lists')}`,
        '-o',
        `Dir::Cache=${path.join(dir, 'cache')}`,
        '-o',
        'APT::Sandbox::User=root', // the private dirs are not readable by _apt
      ],
      dir,
    )
  }

  get isPrivate(): boolean {
    return this.stateDir !== undefined
  }

  /** Refresh the private package lists (once per process); the system lists are left alone. */
  async update(run: Runner): Promise<void> {
    if (!this.stateDir || this.updated) return
    await run.run({ cmd: 'apt-get', args: [...this.opts, '-q', 'update'] })
    this.updated = true
  }

  async candidate(run: Runner, pkg: string): Promise<string | undefined> {
    await this.update(run)
    return parsePolicyCandidate(await run.run({ cmd: 'apt-cache', args: [...this.opts, 'policy', pkg] }))
  }

  /** Download .debs (`name` or `name/suite`) into `dest`; returns their paths. */
  async download(run: Runner, pkgs: string[], dest: string): Promise<string[]> {
    await this.update(run)
    fs.mkdirSync(dest, { recursive: true })
    const before = new Set(fs.readdirSync(dest))
    await run.run({ cmd: 'apt-get', args: [...this.opts, '-q', 'download', ...pkgs], cwd: dest })
    return fs
      .readdirSync(dest)
      .filter((f) => f.endsWith('.deb') && !before.has(f))
      .map((f) => path.join(dest, f))
  }
}

/** Suites that carry linux-source-6.12 and pahole >= 1.25 for a bookworm host. */
export const EXTRA_SUITES = ['trixie', 'bookworm-backports']
