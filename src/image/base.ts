import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { KtstrError } from '../util/errors.js'
import { memoByFile } from '../util/file-memo.js'
import { log } from '../util/log.js'
import { cacheRoot, packageRoot } from '../util/paths.js'
import { copyCached, ensureCached, pruneCached } from './cache-entry.js'
import { libraryClosure } from './closure.js'
import { readElf } from './elf.js'
import { findMke2fs, writeExt4 } from './ext4.js'
import { GUEST_INIT, GUEST_NODE, INIT_SCRIPT_IN_PACKAGE } from './guest-paths.js'
import { findStrip, strippedCopy } from './stripped.js'
import { GuestTree, type PathFilter } from './tree.js'

/** Bump when the image layout changes, so cached archives from older code are not reused. */
const RECIPE = 'ktstr-base-v1'
const KEEP_BASES = 3
/** Cache entries in `imageDir()`: base images, and the stripped node they hold. */
export const BASE_IMAGE_NAME = /^base-[0-9a-f]+\.(cpio|ext4)$/

export function imageDir(): string {
  return path.join(cacheRoot(), 'images')
}
/** Debian's busybox-static; inside a ktstr guest (nested runs) the image's own copy. */
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox', '/ktstr/bin/busybox']
export const BUSYBOX_HOST = BUSYBOX_CANDIDATES[0]!

export function findBusybox(): string {
  const found = BUSYBOX_CANDIDATES.find((p) => fs.existsSync(p))
  if (!found) throw new KtstrError(`${BUSYBOX_HOST} is missing; install busybox-static: apt-get install busybox-static`)
  return found
}
export const GUEST_BIN = '/ktstr/bin'

export interface BaseImageOptions {
  /** More host files or directories (recursively) to include at their host paths. */
  extraPaths?: string[]
  /** The ktstr package folder to take package.json, dist/runtime and koffi from (default: this package). */
  packageRoot?: string
  /** Build a read-only ext4 image (a disk for the guest) instead of the archive, when mke2fs is installed. */
  disk?: boolean
}

export interface BaseImage {
  /** The uncompressed newc archive, or the ext4 image when `format` is 'ext4'. */
  path: string
  format: 'cpio' | 'ext4'
  /** The image's entries (a file's source may be the unstripped node when the image was reused). */
  tree: GuestTree
  key: string
  /** False when the cached archive for `key` was reused. */
  built: boolean
  bytes: number
  /** RAM the archive takes once unpacked in the guest (see imageCost). */
  unpacked: number
  /** Wall time of this call (collecting inputs, plus stripping and writing when built). */
  ms: number
  /** Guest paths of regular files in the archive; a per-run archive can omit these. */
  files: ReadonlySet<string>
  /** Copies the archive to `dest` (safe against a concurrent prune; rebuilt if it went bad meanwhile). */
  copyTo(dest: string): Promise<void>
}

/**
 * The cached base initramfs: node and its libraries, busybox, the compiled ktstr runtime, koffi, and
 * `extraPaths`, all at their host paths. The key hashes every entry's guest path, mode and source
 * (path, size, mtime), so a changed input gives a new archive. A cached archive is checked against
 * its manifest before reuse and written crash-safely, once across processes (see cache-entry.ts).
 */
export async function baseImage(opts: BaseImageOptions = {}): Promise<BaseImage> {
  const t0 = performance.now()
  const tree = collectBase(opts)
  const h = createHash('sha256').update(`${RECIPE}\0strip=${findStrip() ? 1 : 0}\n`)
  tree.fingerprint(h)
  const key = h.digest('hex').slice(0, 16)
  const dir = imageDir()
  fs.mkdirSync(dir, { recursive: true })
  const mke2fs = opts.disk ? findMke2fs() : undefined
  if (opts.disk && !mke2fs) log.debug('mke2fs not found (apt-get install e2fsprogs): the guest unpacks the base image into its RAM instead')
  const format = mke2fs ? 'ext4' : 'cpio'
  const out = path.join(dir, `base-${key}.${format}`)
  const files = regularFiles(tree)

  const ensure = () =>
    ensureCached(out, async (tmp) => {
      // node without its symbols (strippedCopy: none without strip, as the key says).
      const stripped = await strippedCopy('node', process.execPath, dir)
      if (stripped) tree.add(process.execPath, { source: stripped })
      return mke2fs ? writeBaseExt4(tree, mke2fs, tmp) : writeBase(tree, tmp)
    })
  const entry = await ensure()
  const ms = performance.now() - t0
  if (entry.built) {
    log.debug(`base image ${out} built: ${entry.manifest.bytes} bytes, ${tree.size} entries, ${ms.toFixed(0)} ms`)
    pruneCached(dir, BASE_IMAGE_NAME, KEEP_BASES, out)
  } else {
    log.debug(`base image ${out} reused (${ms.toFixed(0)} ms)`)
  }
  return {
    path: out,
    format,
    tree,
    key,
    built: entry.built,
    bytes: entry.manifest.bytes,
    unpacked: entry.manifest.extra.unpacked ?? entry.manifest.bytes,
    ms,
    files,
    copyTo: (dest) => copyCached(out, dest, ensure),
  }
}

/** Writes the archive to `tmp`; returns the manifest's extra fields. */
async function writeBase(tree: GuestTree, tmp: string): Promise<Record<string, number>> {
  await tree.writeCpio(tmp)
  return { unpacked: tree.cost().unpacked }
}

async function writeBaseExt4(tree: GuestTree, mke2fs: string, tmp: string): Promise<Record<string, number>> {
  await writeExt4(tree, mke2fs, tmp)
  return { unpacked: 0 }
}

/** Skips what only editors and debuggers read. */
export const skipDevFiles: PathFilter = (p) => !/\.(map|d\.ts|d\.mts|d\.cts)$/.test(p)

/** The base image's entries, without reading any file content. */
export function collectBase(opts: BaseImageOptions = {}): GuestTree {
  const tree = new GuestTree()

  // Merged-/usr aliases, so /bin/x and /usr/bin/x both work in the guest as on the host.
  for (const alias of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    if (isSymlink(alias) && fs.existsSync(alias)) tree.add(alias)
  }

  // node and the libraries it loads.
  tree.add(process.execPath)
  for (const p of libraryClosure([process.execPath])) tree.add(p)

  addBusybox(tree)
  const root = opts.packageRoot ?? packageRoot()
  addPackage(tree, root)
  // What the kernel starts, at fixed paths: no host path goes on its command line.
  tree.addSymlink(GUEST_NODE, process.execPath)
  tree.addSymlink(GUEST_INIT, path.join(root, INIT_SCRIPT_IN_PACKAGE))

  for (const p of opts.extraPaths ?? []) {
    if (fs.statSync(p, { throwIfNoEntry: false })?.isDirectory()) tree.addDir(p, skipDevFiles)
    else tree.add(p)
  }

  for (const d of ['/proc', '/sys', '/dev', '/run', '/mnt', '/etc', '/root']) tree.addGuestDir(d, d === '/root' ? 0o700 : 0o755)
  tree.addGuestDir('/tmp', 0o1777)
  tree.addDev('/dev/console', 5, 1, 0o600)
  tree.addDev('/dev/null', 1, 3, 0o666)
  tree.addDev('/dev/urandom', 1, 9, 0o666)
  tree.addData('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n')
  tree.addData('/etc/group', 'root:x:0:\n')
  // Name lookups of localhost (Vite/Vitest use it) must resolve from files: there is no DNS.
  tree.addData('/etc/hosts', '127.0.0.1 localhost\n::1 localhost\n')
  tree.addData('/etc/nsswitch.conf', 'hosts: files\n')
  if (!tree.has('/bin/sh')) tree.addSymlink('/bin/sh', `${GUEST_BIN}/busybox`)
  return tree
}

function addBusybox(tree: GuestTree): void {
  const busybox = findBusybox()
  tree.addFileAs(`${GUEST_BIN}/busybox`, busybox, 0o755)
  // A dynamically linked busybox (Debian's plain `busybox` package) still works if its libraries come along.
  if (readElf(busybox).interpreter) {
    for (const p of libraryClosure([busybox]).slice(1)) tree.add(p)
  }
  for (const applet of busyboxApplets(busybox)) {
    if (applet !== 'busybox') tree.addSymlink(`${GUEST_BIN}/${applet}`, 'busybox') // a self-link would loop
  }
}

/** A name `busybox --list` prints that is safe as a file name in /ktstr/bin. */
const APPLET_NAME = /^[\w.[\]-]+$/
const isAppletList = (v: unknown): v is string[] => Array.isArray(v) && v.every((a) => typeof a === 'string' && APPLET_NAME.test(a))

/** What `busybox --list` prints, remembered while the binary stays the same one (a process less per run). */
function busyboxApplets(busybox: string): string[] {
  return memoByFile(
    'busybox-applets',
    busybox,
    () =>
      execFileSync(busybox, ['--list'], { encoding: 'utf8' })
        .split('\n')
        .map((s) => s.trim())
        .filter((s) => APPLET_NAME.test(s)),
    isAppletList,
  )
}

function addPackage(tree: GuestTree, root: string): void {
  const runtime = path.join(root, 'dist', 'runtime')
  if (!fs.existsSync(runtime)) {
    throw new KtstrError(`ktstr is not built: ${runtime} is missing; run \`npm run build\` in ${root}`)
  }
  tree.add(path.join(root, 'package.json'))
  tree.addDir(runtime, skipDevFiles)
  const shims = path.join(root, 'dist', 'native-shims')
  if (fs.existsSync(shims)) tree.addDir(shims, skipDevFiles)

  // Added at the path node looks up (symlinks mirrored); addDir walks, and filters, the real folders.
  const koffi = packageDir(root, 'koffi')
  const koffiReal = tree.add(koffi)
  // koffi requires its native package from its own real location, as node does.
  const native = packageDir(koffiReal, `@koromix/koffi-${process.platform}-${process.arch}`)
  const nativeReal = tree.add(native)
  const musl = path.basename(readElf(process.execPath).interpreter ?? '').startsWith('ld-musl-')
  const keep: PathFilter = (p, st) => {
    if (!skipDevFiles(p, st)) return false
    const name = path.basename(p)
    if (st.isDirectory()) {
      if (p === path.join(koffiReal, 'doc') || p === path.join(koffiReal, 'vendor')) return false // docs, Node-API headers
      // The native package carries a glibc and a musl build; keep the one node's libc can load.
      return !(path.dirname(p) === nativeReal && name.startsWith('musl_') !== musl)
    }
    // koffi ships its C++ sources and build helper; only JS, JSON and .node files are loaded.
    return !/\.(cc|hh|h|c|S|asm|inc|def|md|txt)$|^CMakeLists\.txt$|^cnoke\.cjs$/.test(name)
  }
  tree.addDir(koffi, keep)
  tree.addDir(native, keep)
  const addons = walkFiles(nativeReal, keep).filter((p) => p.endsWith('.node'))
  for (const p of libraryClosure(addons)) tree.add(p)
}

/**
 * The folder of package `name` as node finds it from `fromDir`: the first `node_modules/<name>` walking
 * up, kept unresolved so a symlinked node_modules is mirrored as a symlink too (node's lookup, before
 * its realpath step). Falls back to require.resolve (e.g. NODE_PATH).
 */
function packageDir(fromDir: string, name: string): string {
  for (let d = fromDir; ; d = path.dirname(d)) {
    const cand = path.join(d, 'node_modules', name)
    if (path.basename(d) !== 'node_modules' && fs.existsSync(path.join(cand, 'package.json'))) return cand
    if (d === path.dirname(d)) break
  }
  let entry: string
  try {
    entry = createRequire(path.join(fromDir, 'package.json')).resolve(name)
  } catch (e) {
    throw new KtstrError(`${name} is not installed where ${fromDir} can load it; run \`npm install\` in ${fromDir}`, { cause: e })
  }
  for (let d = path.dirname(entry); d !== path.dirname(d); d = path.dirname(d)) {
    const pj = path.join(d, 'package.json')
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === name) return d
  }
  throw new KtstrError(`cannot find the package.json of ${name} above ${entry}; reinstall it with \`npm install\``)
}

function walkFiles(dir: string, filter: PathFilter): string[] {
  const out: string[] = []
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name)
    const st = fs.statSync(p)
    if (!filter(p, st)) continue
    if (st.isDirectory()) out.push(...walkFiles(p, filter))
    else if (st.isFile()) out.push(p)
  }
  return out
}

/** A stripped copy of node, made once per node binary (99 MB → 86 MB; the debug info is useless in the guest). */
function regularFiles(tree: GuestTree): Set<string> {
  const s = new Set<string>()
  for (const p of tree.paths()) {
    const k = tree.get(p)?.kind
    if (k === 'file' || k === 'data') s.add(p)
  }
  return s
}

function isSymlink(p: string): boolean {
  return fs.lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink() ?? false
}
