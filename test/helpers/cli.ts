/** The compiled `ktstr` CLI as a child process, as a user runs it (no side effects on import). */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cliPath } from './repo.js'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** The TMPDIR this run had: every VM it started has it in its command line (see strayQemus). */
  tmpdir: string
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-cli-'))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: { ...process.env, TMPDIR: tmpdir, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`ktstr ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 120_000} ms\n${stderr}`))
    }, opts.timeoutMs ?? 120_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      fs.rmSync(tmpdir, { recursive: true, force: true })
      resolve({ code, stdout, stderr, tmpdir })
    })
    child.stdin.end(opts.input ?? '')
  })
}

/** QEMU processes still alive that a CLI run started (their command line names its TMPDIR). */
export function strayQemus(run: { tmpdir: string }): string[] {
  const out: string[] = []
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      if (cmd.includes('qemu-system') && cmd.includes(run.tmpdir)) out.push(pid)
    } catch {
      /* gone */
    }
  }
  return out
}
