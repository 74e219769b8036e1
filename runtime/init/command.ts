/**
 * Run the user's command with its stdio carried over the channel (Data frames).
 */
import { spawn } from 'node:child_process'
import type { GuestEndpoint } from '../protocol/index.js'
import { StreamId } from '../protocol/index.js'
import { drainOutput } from './output-drain.js'
import type { StdinBuffer } from './stdin-buffer.js'

export interface CommandResult {
  code: number | null
  signal: string | null
}

export interface RunningCommand {
  done: Promise<CommandResult>
  kill(signal: NodeJS.Signals): void
}

export function runCommand(endpoint: GuestEndpoint, argv: string[], opts: { env: Record<string, string>; cwd: string; stdin: StdinBuffer }): RunningCommand {
  const [file, ...args] = argv
  // detached: the command leads its own process group, so a signal reaches its children too.
  const child = spawn(file!, args, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  opts.stdin.pipeTo(child.stdin)
  child.stdout.on('data', (b: Buffer) => endpoint.sendData(StreamId.Stdout, b))
  child.stderr.on('data', (b: Buffer) => endpoint.sendData(StreamId.Stderr, b))

  const done = new Promise<CommandResult>((resolve) => {
    child.on('error', (err) => {
      const notFound = (err as NodeJS.ErrnoException).code === 'ENOENT'
      const hint = notFound
        ? file!.startsWith('/')
          ? `${file} is not in the guest image; add it with --include ${file}`
          : `${file} is not on the guest's PATH; give its absolute path and add it with --include`
        : err.message
      endpoint.sendData(StreamId.Stderr, Buffer.from(`ktstr: cannot run ${file}: ${hint}\n`))
      const code = notFound ? 127 : 126
      resolve({ code, signal: null })
    })
    // The command's exit ends it: its output is read to the end or until it goes quiet, not until
    // every background process that inherited the pipes lets go of them.
    child.on('exit', (code, signal) => void drainOutput([child.stdout, child.stderr]).then(() => resolve({ code, signal })))
  })

  return {
    done,
    kill(signal) {
      if (child.pid === undefined) return
      // The whole group, also after its leader exited: what it left in the background goes too.
      try {
        process.kill(-child.pid, signal)
      } catch {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      }
    },
  }
}
