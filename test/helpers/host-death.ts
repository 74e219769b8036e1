/**
 * Killing a ktstr host (the CLI or Vitest) mid-run and counting what it left: its QEMU processes
 * (their command line names the run's TMPDIR, see strayQemus) and its run folders under that TMPDIR.
 */
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { strayQemus } from './cli.js'

/** The host, the VM and the run folder are all gone within this long of the signal. */
export const GONE_WITHIN_MS = 5000

export function runDirs(tmpdir: string): string[] {
  return fs.readdirSync(tmpdir).filter((n) => n.startsWith('ktstr-vm-'))
}

/** Polls `cond` every 10 ms until it holds (true) or `ms` passed (false). */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  for (;;) {
    if (cond()) return true
    if (Date.now() > until) return false
    await new Promise((r) => setTimeout(r, 10))
  }
}

export interface AfterKill {
  /** The host's exit: its code, or the signal that ended it. */
  exit: number | string | null
  /** QEMU processes of the run still alive GONE_WITHIN_MS after the signal. */
  qemus: string[]
  /** Run folders left GONE_WITHIN_MS after the signal (or as soon as none are). */
  folders: string[]
}

/**
 * Sends `signal` to `child` and waits (at most GONE_WITHIN_MS) for it to exit and for its VM and
 * run folders to go; a SIGKILLed host cannot remove its folders, so then only the VM is awaited.
 */
export async function killAndCount(child: ChildProcess, signal: NodeJS.Signals, tmpdir: string): Promise<AfterKill> {
  const exited = new Promise<number | string | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode)
    else child.once('exit', (code, sig) => resolve(code ?? sig))
  })
  child.kill(signal)
  const start = Date.now()
  const exit = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), GONE_WITHIN_MS))])
  const left = GONE_WITHIN_MS - (Date.now() - start)
  await waitFor(() => strayQemus({ tmpdir }).length === 0 && (signal === 'SIGKILL' || runDirs(tmpdir).length === 0), left)
  if (exit === null) child.kill('SIGKILL')
  return { exit, qemus: strayQemus({ tmpdir }), folders: runDirs(tmpdir) }
}

/**
 * A guest slow to power off, for real: the command leaves 12 MB of dirty pages for a 256 KiB/s
 * disk, held open by a background process (so no close flushes them early); the guest's final
 * sync then takes 48 s. The command prints `wrote` and exits 0.
 */
export function slowPowerOff(): { disk(dir: string): string; command: string[] } {
  return {
    disk(dir) {
      const file = path.join(dir, 'slow-disk.img')
      fs.writeFileSync(file, '')
      fs.truncateSync(file, 16 << 20)
      return `${file},bps=262144`
    },
    command: ['sh', '-c', '(exec 3<>/dev/vda; sleep 1000) & dd if=/dev/zero of=/dev/vda bs=1M count=12 2>/dev/null; echo wrote'],
  }
}
