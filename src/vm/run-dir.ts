/**
 * Run folders: the per-guest folder under TMPDIR holding the initrd (~100 MB) and the channel
 * socket. Its name carries the owner's pid and process start time (`ktstr-vm-<pid>-<start>-XXXXXX`),
 * so a later ktstr can tell a folder whose owner died without cleaning up (SIGKILL, a crash) and
 * sweep it. A live owner removes its folders as soon as the VMM has loaded them, when the guest
 * ends, and on process exit.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { log } from '../util/log.js'

const PREFIX = 'ktstr-vm-'
const NAME = /^ktstr-vm-(\d+)-(\d+)-/

const live = new Set<string>()
let exitHookInstalled = false

/** Clock ticks since boot at which `pid` started (field 22 of /proc/<pid>/stat); undefined if it is gone. */
export function processStartTime(pid: number | 'self'): string | undefined {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

/** tmpfs for files the guest writes at memory speed (QEMU's guest RAM backing, qemu/ram-backing.ts); swept too. */
export const SHM_DIR = '/dev/shm'

export function createRunDir(parent = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(parent, `${PREFIX}${process.pid}-${processStartTime('self') ?? 0}-`))
  live.add(dir)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', () => {
      for (const d of live) removeTree(d)
    })
  }
  return dir
}

/** Remove a run folder now (idempotent). */
export function removeRunDir(dir: string): void {
  if (live.delete(dir)) removeTree(dir)
}

/**
 * Writes into the folder may still be in flight (e.g. the initrd, when a signal ends the process
 * mid-build): renamed first, the folder's path is gone at once, so no file can be created in it
 * after the removal began. A folder that still cannot be removed keeps an owner-named name, for the
 * next sweep.
 */
function removeTree(dir: string): void {
  const doomed = `${dir}-removing`
  try {
    fs.renameSync(dir, doomed)
  } catch {
    return // already gone
  }
  try {
    fs.rmSync(doomed, { recursive: true, force: true, maxRetries: 3 })
  } catch (e) {
    log.debug(`could not remove run folder ${doomed}: ${(e as Error).message}`)
  }
}

/** Remove the run folders under `tmp` whose owner process is gone (or whose pid now names another process). */
export function sweepRunDirs(tmp = os.tmpdir()): void {
  let names: string[]
  try {
    names = fs.readdirSync(tmp)
  } catch {
    return
  }
  for (const name of names) {
    const m = NAME.exec(name)
    if (!m || processStartTime(Number(m[1])) === m[2]) continue
    log.debug(`removing stale run folder ${path.join(tmp, name)} (its ktstr process ${m[1]} is gone)`)
    removeTree(path.join(tmp, name))
  }
}

let swept = false
/** Sweep once per process, at its first boot. */
export function sweepRunDirsOnce(): void {
  if (swept) return
  swept = true
  sweepRunDirs()
  sweepRunDirs(SHM_DIR)
}
