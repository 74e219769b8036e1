import fs from 'node:fs'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { cacheRoot } from '../util/paths.js'
import type { Apt } from './apt.js'
import type { Runner } from './build-log.js'

export const DEBIAN_SOURCE_PACKAGE = 'linux-source-6.12'
const TARBALL = 'usr/src/linux-source-6.12.tar.xz'

export interface DebianSource {
  apt: Apt
  /** Debian version of linux-source-6.12, e.g. `6.12.117-1~deb12u1`. */
  packageVersion: string
}

/** Where linux-source-6.12 comes from: the machine's own apt sources when they carry it, else trixie/backports. */
export async function locateDebianSource(run: Runner, systemApt: Apt, extraApt: () => Apt): Promise<DebianSource> {
  const own = await systemApt.candidate(run, DEBIAN_SOURCE_PACKAGE).catch(() => undefined)
  if (own) return { apt: systemApt, packageVersion: own }
  const apt = extraApt()
  const extra = await apt.candidate(run, DEBIAN_SOURCE_PACKAGE)
  if (!extra) throw new KtstrError(`no apt source offers ${DEBIAN_SOURCE_PACKAGE}; pass --source <kernel tree> instead`)
  return { apt, packageVersion: extra }
}

/** The unpacked tree under the cache (`src/linux-source-<version>`), made once per package version. */
export async function unpackDebianSource(run: Runner, src: DebianSource): Promise<string> {
  const dir = path.join(cacheRoot(), 'src', `linux-source-${src.packageVersion.replace(/[^A-Za-z0-9.+-]/g, '_')}`)
  if (fs.existsSync(path.join(dir, 'Makefile'))) return dir
  const tmp = `${dir}.tmp-${process.pid}`
  fs.rmSync(tmp, { recursive: true, force: true })
  const [deb] = await src.apt.download(run, [`${DEBIAN_SOURCE_PACKAGE}=${src.packageVersion}`], path.join(tmp, 'deb'))
  if (!deb) throw new KtstrError(`apt-get download ${DEBIAN_SOURCE_PACKAGE} produced no .deb (see the build log)`)
  await run.run({ cmd: 'dpkg-deb', args: ['-x', deb, path.join(tmp, 'pkg')] })
  await run.run({ cmd: 'tar', args: ['-xJf', path.join(tmp, 'pkg', TARBALL), '-C', tmp] })
  const tree = path.join(tmp, path.basename(TARBALL, '.tar.xz'))
  if (!fs.existsSync(path.join(tree, 'Makefile'))) throw new KtstrError(`${TARBALL} did not unpack to a kernel tree (see ${tmp})`)
  fs.renameSync(tree, dir)
  fs.rmSync(tmp, { recursive: true, force: true })
  return dir
}
