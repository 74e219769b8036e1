/**
 * What this process holds, read from /proc/self: open descriptors (their link targets), memory
 * mappings and threads — to prove a stop path released everything it took.
 */
import fs from 'node:fs'

export interface Resources {
  /** fd number → what it refers to (a path, `anon_inode:[eventfd]`, `anon_inode:kvm-vcpu:0`, …). */
  readonly fds: ReadonlyMap<number, string>
  /** /proc/self/maps lines. */
  readonly maps: readonly string[]
  /** Kernel thread ids. */
  readonly threads: readonly number[]
}

export function resources(): Resources {
  const fds = new Map<number, string>()
  for (const n of fs.readdirSync('/proc/self/fd')) {
    try {
      fds.set(Number(n), fs.readlinkSync(`/proc/self/fd/${n}`))
    } catch {
      /* the directory's own fd, closed by now */
    }
  }
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').trim().split('\n')
  const threads = fs.readdirSync('/proc/self/task').map(Number)
  return { fds, maps, threads }
}

/** Descriptors open now that were not in `before` (by number and target). */
export function newFds(before: Resources, now = resources()): string[] {
  return [...now.fds].filter(([n, t]) => before.fds.get(n) !== t).map(([n, t]) => `${n} → ${t}`)
}

/** Threads alive now that were not in `before`. */
export function newThreads(before: Resources, now = resources()): number[] {
  const old = new Set(before.threads)
  return now.threads.filter((t) => !old.has(t))
}

/** Mapping lines now that were not in `before`. */
export function newMaps(before: Resources, now = resources()): string[] {
  const old = new Set(before.maps)
  return now.maps.filter((m) => !old.has(m))
}

/** A thread of this process blocked in read(2) on `fd` (syscall 0 on x86_64, first argument fd). */
export function threadBlockedInRead(fd: number): boolean {
  return fs.readdirSync('/proc/self/task').some((t) => {
    try {
      const [nr, arg0] = fs.readFileSync(`/proc/self/task/${t}/syscall`, 'utf8').split(' ')
      return nr === '0' && Number(arg0) === fd
    } catch {
      return false
    }
  })
}
