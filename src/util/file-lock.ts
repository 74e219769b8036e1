/**
 * Cross-process locks on a lock file, for the caches. They are open file description (OFD) locks
 * (fcntl(2)): the kernel drops them when the holder's process dies, so there is no stale lock to
 * detect or break, and two opens in one process conflict too (pool workers share a process).
 * A lock file-based library (proper-lockfile) would guess staleness from timestamps instead.
 * Waiting polls F_OFD_SETLK: the blocking F_OFD_SETLKW would stall Node's event loop.
 */
import fs from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { F_OFD_SETLK, F_RDLCK, F_WRLCK } from '../../native-shims/constants.js'
import * as libc from '../../native-shims/libc.js'
import { KtstrError } from './errors.js'
import { log } from './log.js'

export type LockMode = 'shared' | 'exclusive'

export interface AcquireOptions {
  /** Called once if the lock is busy, with the pid of its last exclusive holder (written into the file). */
  onWait?: (holderPid: number | undefined) => void
}

export class FileLock {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
  ) {}

  /** The lock if it is free now, else undefined. */
  static tryAcquire(path: string, mode: LockMode): FileLock | undefined {
    for (;;) {
      const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
      let got: boolean
      try {
        got = setLock(fd, path, mode === 'exclusive' ? F_WRLCK : F_RDLCK)
      } catch (e) {
        fs.closeSync(fd)
        throw e
      }
      if (!got) {
        fs.closeSync(fd)
        return undefined
      }
      // A holder may have removed the file (FileLock.remove) between our open and our lock: then
      // the lock guards nothing; lock the file that is there now instead.
      if (!sameFile(fd, path)) {
        fs.closeSync(fd)
        continue
      }
      if (mode === 'exclusive') writePid(fd)
      return new FileLock(path, fd)
    }
  }

  /** Waits until the lock is free (polling; a holder that dies frees it). */
  static async acquire(path: string, mode: LockMode, opts: AcquireOptions = {}): Promise<FileLock> {
    let delay = 10
    let told = false
    for (;;) {
      const lock = FileLock.tryAcquire(path, mode)
      if (lock) return lock
      if (!told) {
        told = true
        const pid = readPid(path)
        log.debug(`waiting for the lock ${path} (held by pid ${pid ?? '?'})`)
        opts.onWait?.(pid)
      }
      await sleep(delay)
      delay = Math.min(delay * 2, 250)
    }
  }

  release(): void {
    if (this.fd === undefined) return
    fs.closeSync(this.fd) // closing the last descriptor of the open file description drops its lock
    this.fd = undefined
  }

  /** Deletes the lock file and releases it (hold it exclusively; waiters then lock a new file). */
  remove(): void {
    if (this.fd === undefined) return
    fs.rmSync(this.path, { force: true })
    this.release()
  }
}

/** Takes the whole-file lock; false when another open file description holds a conflicting one. */
function setLock(fd: number, path: string, type: number): boolean {
  try {
    libc.fcntlLock(fd, F_OFD_SETLK, { type, start: 0, len: 0 })
    return true
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'EAGAIN' || code === 'EACCES') return false
    // A file system without OFD locks (some network file systems): go on unlocked, as QEMU does.
    if (code === 'ENOLCK' || code === 'EINVAL' || code === 'EOPNOTSUPP') {
      log.debug(`no lock on ${path} (${code}); going on without it`)
      return true
    }
    throw new KtstrError(`cannot lock ${path}: ${(e as Error).message}`, { cause: e })
  }
}

function sameFile(fd: number, path: string): boolean {
  const st = fs.statSync(path, { throwIfNoEntry: false })
  if (!st) return false
  const own = fs.fstatSync(fd)
  return st.ino === own.ino && st.dev === own.dev
}

function writePid(fd: number): void {
  const text = `${process.pid}\n`
  fs.ftruncateSync(fd, 0)
  fs.writeSync(fd, text, 0)
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(path, 'utf8'), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}
