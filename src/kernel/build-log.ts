import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import type { Command } from './build-plan.js'

/** The build's full output: a file on disk plus the last lines in memory for error reports. */
export class BuildLog {
  private readonly fd: number
  private readonly last: string[] = []
  private partial = ''

  constructor(readonly path: string) {
    fs.mkdirSync(pathDir(path), { recursive: true })
    this.fd = fs.openSync(path, 'a')
  }

  write(text: string): void {
    fs.writeSync(this.fd, text)
    const lines = (this.partial + text).split('\n')
    this.partial = lines.pop() ?? ''
    this.last.push(...lines)
    if (this.last.length > 200) this.last.splice(0, this.last.length - 200)
  }

  tail(n: number): string[] {
    const all = this.partial ? [...this.last, this.partial] : this.last
    return all.slice(-n)
  }

  close(): void {
    fs.closeSync(this.fd)
  }
}

function pathDir(p: string): string {
  return path.dirname(p)
}

export class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(`\`${command}\` ${signal ? `was killed by ${signal}` : exitCode === null ? 'could not start' : `exited with ${exitCode}`}`)
  }
}

export function formatCommand(c: Command): string {
  return [c.cmd, ...c.args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

/** Runs build commands with all their output appended to `log`; `onLine` sees each output line. */
export class Runner {
  constructor(
    private readonly log: BuildLog,
    private readonly onLine?: (line: string) => void,
  ) {}

  /** Run to completion; throws CommandFailed on a non-zero exit. Returns stdout. */
  run(c: Command, env: Record<string, string> = {}): Promise<string> {
    const text = formatCommand(c)
    this.log.write(`\n$ ${c.cwd ? `(cd ${c.cwd} && ${text})` : text}\n`)
    return new Promise((resolve, reject) => {
      const child = spawn(c.cmd, c.args, {
        cwd: c.cwd,
        env: { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let pending = ''
      const feed = (chunk: Buffer, isStdout: boolean) => {
        const s = chunk.toString('utf8')
        if (isStdout) stdout += s
        this.log.write(s)
        if (!this.onLine) return
        const lines = (pending + s).split('\n')
        pending = lines.pop() ?? ''
        for (const l of lines) this.onLine(l)
      }
      child.stdout.on('data', (b: Buffer) => feed(b, true))
      child.stderr.on('data', (b: Buffer) => feed(b, false))
      child.on('error', (e) => {
        this.log.write(`${c.cmd}: ${e.message}\n`)
        reject(new CommandFailed(text, null, null))
      })
      child.on('close', (code, signal) => {
        if (pending && this.onLine) this.onLine(pending)
        if (code === 0) resolve(stdout)
        else reject(new CommandFailed(text, code, signal))
      })
    })
  }
}
