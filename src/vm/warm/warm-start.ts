/**
 * Warm start: a guest restored from a snapshot of a booted guest of the same shape (./key.ts)
 * instead of booted. The snapshot is of a template guest: booted with the base image only, its
 * init up and waiting for a run (runtime/init/template.ts), nothing per-run in it. Every run
 * restores a pristine copy; what is its own (the run spec, the scheduler, includes) reaches the
 * restored guest over the channel (the session sends it: session-runner.ts).
 *
 * Snapshots are cache entries (image/cache-entry.ts): made once under an exclusive lock while
 * other processes wait, checked on use, restored under a shared lock, pruned to a size cap. Any
 * failure here is not the run's: the caller boots cold, with the reason under KTSTR_LOG=debug.
 */
import fs from 'node:fs'
import path from 'node:path'
import { decodeGuestMessage } from '../../../runtime/protocol/guest-schema.js'
import { Endpoint, INIT_CONSOLE_PREFIX, TEMPLATE_SPEC_PATH, type TemplateSpec } from '../../../runtime/protocol/index.js'
import type { BaseImage } from '../../image/base.js'
import { ensureCached, partPath, pruneCached, removeCached, withCached } from '../../image/cache-entry.js'
import { composeInitrd } from '../../image/initrd.js'
import { runArchive } from '../../image/run-archive.js'
import { KtstrError } from '../../util/errors.js'
import { log } from '../../util/log.js'
import { cacheRoot } from '../../util/paths.js'
import type { Backend, LaunchPlan, PendingRestore } from '../backend.js'
import { ConsoleLog } from '../console.js'
import { createRunDir, removeRunDir } from '../run-dir.js'
import type { VmProcess } from '../vm-process.js'

/** Default cap on the snapshots kept (KTSTR_SNAPSHOT_CACHE_MIB overrides). */
const DEFAULT_CACHE_MIB = 2048
/** How long a template guest gets to boot to its init. */
const TEMPLATE_BOOT_MS = 180_000
/** A snapshot's state file: QEMU's migration stream, or our VMM's state (kvm/snapshot/format.ts). */
export const SNAPSHOT_NAME = /^snapshot-[0-9a-f]+\.(qemu|kvm)$/

/** `<cache>/snapshots`, or KTSTR_SNAPSHOT_DIR. */
export function snapshotDir(): string {
  return process.env.KTSTR_SNAPSHOT_DIR || path.join(cacheRoot(), 'snapshots')
}

/** The snapshots' size cap in bytes: KTSTR_SNAPSHOT_CACHE_MIB, else 2 GiB. */
export function snapshotCacheBytes(): number {
  const v = process.env.KTSTR_SNAPSHOT_CACHE_MIB
  if (!v) return DEFAULT_CACHE_MIB * 2 ** 20
  if (!/^\d+$/.test(v)) throw new KtstrError(`bad KTSTR_SNAPSHOT_CACHE_MIB=${JSON.stringify(v)}: expected a whole number of MiB (0 keeps none but the last)`)
  return Number(v) * 2 ** 20
}

export interface WarmInput {
  backend: Backend
  /** Whose state file it is: QEMU's or our VMM's (its name's extension). */
  format: 'qemu' | 'kvm'
  key: string
  /** The run's plan as a cold boot would launch it (a template boots from it). */
  plan: LaunchPlan
  base: BaseImage
  /** The run's VMM, already started (while the key was worked out), waiting for the snapshot. */
  pending: PendingRestore
  /** What the template loads before its snapshot (TEMPLATE_SPEC_PATH in its initramfs); in the key too. */
  template?: TemplateSpec
  /** The restore is not wanted any more (a standby guest dropped): its failure then says nothing of the snapshot. */
  signal?: AbortSignal
}

/**
 * The run's guest restored from its shape's snapshot (made first if missing); undefined: boot cold
 * (the caller then abandons `pending`, unless it restored and failed).
 */
export async function warmLaunch(input: WarmInput): Promise<VmProcess | undefined> {
  const dir = snapshotDir()
  const file = path.join(dir, `snapshot-${input.key}.${input.format}`)
  const capBytes = snapshotCacheBytes() // a bad value is the user's to fix, not a reason to boot cold
  // Twice at most: a snapshot found bad (a part missing or cut short) is made again once.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.mkdirSync(dir, { recursive: true })
      const t0 = performance.now()
      const made = await ensureCached(file, (tmp) => makeSnapshot(input, tmp, file))
      if (made.built) {
        log.debug(`warm start: snapshot ${file} made in ${(performance.now() - t0).toFixed(0)} ms`)
        pruneCached(dir, SNAPSHOT_NAME, { maxBytes: capBytes }, file)
      }
    } catch (e) {
      log.debug(`warm start: no snapshot (${(e as Error).message}); booting cold`)
      return undefined
    }
    let restored: { value: VmProcess | string } | undefined
    try {
      // The shared lock is held while QEMU reads the snapshot: pruning waits.
      restored = await withCached(file, async (manifest) => {
        const bad = badPart(file, manifest.extra)
        return bad ?? (await input.pending.restore(file))
      })
    } catch (e) {
      if (input.signal?.aborted) return undefined
      log.debug(`warm start: ${(e as Error).message}; dropping ${file} and booting cold`)
      await removeCached(file)
      return undefined
    }
    if (restored && typeof restored.value !== 'string') return restored.value
    log.debug(`warm start: snapshot ${file} ${restored ? restored.value : 'went missing or bad'}; making it again`)
    if (restored) await removeCached(file)
  }
  return undefined
}

/** Why a snapshot's parts do not match its manifest (`part-<name>`: bytes), if they do not. */
function badPart(file: string, extra: Record<string, number>): string | undefined {
  for (const [key, bytes] of Object.entries(extra)) {
    if (!key.startsWith('part-')) continue
    const part = partPath(file, key.slice('part-'.length))
    const size = fs.statSync(part, { throwIfNoEntry: false })?.size
    if (size !== bytes) return `has ${path.basename(part)} ${size === undefined ? 'missing' : `of ${size} bytes, not ${bytes}`}`
  }
  return undefined
}

/**
 * Boot a template guest of the plan's shape and save it to `tmp` once its init is ready; its parts
 * (the RAM files) are moved beside `file` and their sizes go into the manifest.
 */
async function makeSnapshot(input: WarmInput, tmp: string, file: string): Promise<Record<string, number>> {
  const runDir = createRunDir()
  const console = new ConsoleLog(200)
  let vm: VmProcess | undefined
  try {
    const initrd = path.join(runDir, 'initrd.cpio')
    if (input.template) await composeInitrd(input.base, runArchive({ data: [{ guestPath: TEMPLATE_SPEC_PATH, content: JSON.stringify(input.template) }], hostPaths: [] }), initrd)
    else await input.base.copyTo(initrd)
    vm = await input.backend.launch({ ...input.plan, initrd, channelSocket: path.join(runDir, 'channel.sock'), snapshot: { kind: 'save' } }, console)
    const stream = await vm.channel
    const channel = new Endpoint(stream, decodeGuestMessage)
    const gone = vm.exited
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the template guest was not ready within ${TEMPLATE_BOOT_MS / 1000} s`)), TEMPLATE_BOOT_MS)
      channel.on('control', (msg) => {
        if (msg.kind === 'template-ready') {
          clearTimeout(timer)
          resolve()
        }
      })
      channel.on('corrupt', (err) => reject(err))
      void gone.then(() => {
        clearTimeout(timer)
        reject(new Error(`the template guest ended before it was ready: ${console.panic ?? console.tail(5).join(' | ')}`))
      })
    })
    // What the template's init wrote on its console (a failed rehearsal, Vitest that would not load):
    // the snapshot is still good, only its runs slower or failing on their own.
    for (const line of console.tail(200)) if (line.startsWith(INIT_CONSOLE_PREFIX)) log.debug(`warm start: the template guest said: ${line.slice(INIT_CONSOLE_PREFIX.length)}`)
    if (!vm.saveSnapshot) throw new Error('this backend cannot save a snapshot')
    const extra: Record<string, number> = {}
    for (const part of await vm.saveSnapshot(tmp)) {
      const name = part.slice(tmp.length + '.part-'.length)
      const dest = partPath(file, name)
      fs.renameSync(part, dest)
      extra[`part-${name}`] = fs.statSync(dest).size
    }
    return extra
  } finally {
    vm?.kill()
    await vm?.exited
    removeRunDir(runDir)
  }
}
