import { parseArgs } from 'node:util'
import { runGuest } from './run-guest.js'
import { VM_OPTIONS, vmRequestFrom } from './vm-options.js'

export const SHELL_USAGE = `usage: ktstr shell [--kernel K] [--topology NnNlNcNt] [--memory MIB] [--scheduler NAME|PATH] [--sched-args "..."] [-i PATH]...
An interactive busybox shell in a booted guest (line mode; Ctrl-C interrupts, Ctrl-D or 'exit' leaves).`

export async function shellCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: VM_OPTIONS, allowPositionals: false, strict: true })
  if (values.help) {
    process.stdout.write(`${SHELL_USAGE}\n`)
    return 0
  }
  // A shell has no natural end: default to a day instead of the exec timeout.
  const req = vmRequestFrom({ timeout: '86400', ...values }, { kind: 'shell', tty: false })
  return runGuest(req, { forwardStdin: true, timing: values.timing === true })
}
