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
 * disabled (reason)` line, not the warnings it prints while loading (e.g. about cgroup support),
 * with the scheduler's message when sched_ext printed one next (`sched_ext: x: msg`, e.g. the
 * text of an scx_bpf_error()).
 */
export function schedExtExitLine(): string | undefined {
  const lines = schedExtLogLines()
  const at = lines.findLastIndex((l) => / disabled \(/.test(l))
  if (at < 0) return undefined
  const ops = /BPF scheduler "(.*)" disabled/.exec(lines[at]!)?.[1]
  const msg = ops !== undefined && lines[at + 1]?.startsWith(`sched_ext: ${ops}: `) ? lines[at + 1]!.slice(`sched_ext: ${ops}: `.length) : undefined
  return msg ? `${lines[at]}: ${msg}` : lines[at]
}

/** Every `sched_ext:` line the kernel log holds, oldest first. */
export function schedExtLogLines(): string[] {
  return readKernelLog().filter((l) => l.startsWith('sched_ext:'))
}
