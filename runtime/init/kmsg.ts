/** Read what the kernel log holds right now, without blocking (/dev/kmsg, O_NONBLOCK). */
import fs from 'node:fs'

export function readKernelLog(): string[] {
  let fd: number
  try {
    fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  } catch {
    return []
  }
  const lines: string[] = []
  const buf = Buffer.alloc(8192)
  try {
    for (;;) {
      let n: number
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EPIPE') continue // a record was overwritten while we read; go on
        break // EAGAIN: no more records
      }
      if (n <= 0) break
      // "prio,seq,usec,flags;message\n" (Documentation/ABI/testing/dev-kmsg)
      const rec = buf.toString('utf8', 0, n)
      const semi = rec.indexOf(';')
      lines.push((semi >= 0 ? rec.slice(semi + 1) : rec).split('\n')[0]!)
    }
  } finally {
    fs.closeSync(fd)
  }
  return lines
}

/**
 * sched_ext's own account of why a scheduler stopped: the newest `sched_ext: BPF scheduler "x"
 * disabled (reason)` line, not the warnings it prints while loading (e.g. about cgroup support).
 */
export function schedExtExitLine(): string | undefined {
  return schedExtLogLines()
    .filter((l) => / disabled \(/.test(l))
    .at(-1)
}

/** Every `sched_ext:` line the kernel log holds, oldest first. */
export function schedExtLogLines(): string[] {
  return readKernelLog().filter((l) => l.startsWith('sched_ext:'))
}
