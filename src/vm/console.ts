/**
 * The guest's kernel console (ttyS0): kept as a ring of recent lines for error reports, scanned
 * for kernel panics and sched_ext exits, optionally mirrored to a log file.
 */
import fs from 'node:fs'

const PANIC = /Kernel panic - not syncing: ?(.*)$/
/** kernel/reboot.c: what the kernel prints as it resets the machine (reboot, or panic=-1). */
const RESTART = /reboot: Restarting system/
const SCX_DISABLED = /sched_ext: BPF scheduler "([^"]*)" disabled \((.*)\)$/

export class ConsoleLog {
  private lines: string[] = []
  private partial = ''
  private fd: number | undefined
  /** Host time (ms, performance.now()) of the first byte, if any arrived. */
  firstByteAt: number | undefined
  panic: string | undefined
  /** The kernel said it is resetting the machine. */
  restarted = false
  /** The last sched_ext "disabled (reason)" line seen. */
  schedExtExit: { scheduler: string; reason: string } | undefined

  constructor(
    private readonly keep = 400,
    logFile?: string,
    private readonly echo?: (line: string) => void,
  ) {
    if (logFile) this.fd = fs.openSync(logFile, 'a')
  }

  push(chunk: Buffer): void {
    if (this.firstByteAt === undefined) this.firstByteAt = performance.now()
    if (this.fd !== undefined) fs.writeSync(this.fd, chunk)
    const text = this.partial + chunk.toString('utf8')
    const parts = text.split(/\r?\n/)
    this.partial = parts.pop() ?? ''
    for (const raw of parts) this.addLine(raw)
  }

  /** The last n complete lines plus any unterminated tail. */
  tail(n = 40): string[] {
    const all = this.partial ? [...this.lines, this.partial] : this.lines
    return all.slice(-n)
  }

  close(): void {
    if (this.partial) this.addLine(this.partial)
    this.partial = ''
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }

  private addLine(raw: string): void {
    // Strip terminal control sequences so reports stay readable.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the terminal sequences it strips
    const line = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '')
    this.lines.push(line)
    if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep)
    this.echo?.(line)
    const p = PANIC.exec(line)
    if (p && this.panic === undefined) this.panic = p[1]!.trim() || 'kernel panic'
    if (RESTART.test(line)) this.restarted = true
    const s = SCX_DISABLED.exec(line)
    if (s) this.schedExtExit = { scheduler: s[1]!, reason: s[2]! }
  }
}
