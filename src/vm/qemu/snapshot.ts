/**
 * QEMU's side of warm start: a guest's device state as QEMU's migration stream in a file, and its
 * RAM as the memory-backend files themselves. Both sides run with the `x-ignore-shared`
 * capability, so shared (share=on) RAM is left out of the stream: the snapshot keeps the
 * template's RAM files (sparse copies) and a restore maps copies of them, instead of parsing a
 * GiB of mostly zero pages — which on a shared tmpfs file would also allocate every page. Saving
 * migrates a stopped guest into `cat > file`; restoring starts a QEMU built the same way with
 * `-incoming defer` and feeds it `cat file` (QMP `migrate` / `migrate-incoming`,
 * docs/devel/migration). QEMU 7.2 has no `file:` URI, hence `exec:` through /bin/sh.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { partPath } from '../../image/cache-entry.js'
import { Qmp, QmpError } from './qmp.js'

/** How often the migration's status is polled. */
const POLL_MS = 10
/** How long QEMU gets to create its QMP socket after it started. */
const QMP_CONNECT_MS = 10_000

/** The RAM files of the snapshot `file`, one per NUMA node: parts of its cache entry. */
export function snapshotRamFiles(file: string, nodes: number): string[] {
  return Array.from({ length: nodes }, (_, n) => partPath(file, `ram${n}`))
}

/** A path as one /bin/sh word. */
export function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** Connect to QEMU's QMP server once it listens; gives up when QEMU has exited or after 10 s. */
export async function connectQmp(socketPath: string, exited: Promise<unknown>): Promise<Qmp> {
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = performance.now() + QMP_CONNECT_MS
  for (;;) {
    try {
      return await Qmp.connect(socketPath)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (gone || performance.now() > deadline || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) {
        throw new QmpError(`cannot reach QEMU's QMP socket: ${gone ? 'QEMU exited' : (e as Error).message}`)
      }
      await sleep(POLL_MS)
    }
  }
}

/** Stop the guest and write its state to `file`. */
export async function saveQemuSnapshot(qmp: Qmp, file: string): Promise<void> {
  await ignoreSharedRam(qmp)
  await qmp.execute('stop')
  await qmp.execute('migrate', { uri: `exec:cat > ${shellWord(file)}` })
  await migrationDone(qmp)
}

/**
 * Load the state of `file` into a QEMU started with `-incoming defer`, then run it: the saved guest
 * was stopped, and QEMU keeps a guest migrated from a stopped source stopped.
 */
export async function restoreQemuSnapshot(qmp: Qmp, file: string): Promise<void> {
  await ignoreSharedRam(qmp)
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellWord(file)}` })
  await migrationDone(qmp)
  await qmp.execute('cont')
}

function ignoreSharedRam(qmp: Qmp): Promise<unknown> {
  return qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] })
}

interface MigrateInfo {
  status?: string
  'error-desc'?: string
}

async function migrationDone(qmp: Qmp): Promise<void> {
  for (;;) {
    const info = (await qmp.execute('query-migrate')) as MigrateInfo
    if (info.status === 'completed') return
    if (info.status === 'failed' || info.status === 'cancelled') throw new QmpError(`migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`)
    await sleep(POLL_MS)
  }
}
