/** What `exec` and `shell` share: boot, wire stdio and signals, wait, report. */
import pc from 'picocolors'
import { describeOutcome } from '../vm/outcome.js'
import { bootGuest } from '../vm/boot.js'
import type { GuestOutcome, VmRequest } from '../vm/session.js'
import { log } from '../util/log.js'
import { EXIT_KTSTR_FAILED, commandExitCode } from './exit-codes.js'
import { attachStdio, forwardInterrupts } from './guest-stdio.js'
import { formatTiming } from './timing.js'

export async function runGuest(req: VmRequest, opts: { forwardStdin: boolean; timing: boolean }): Promise<number> {
  const session = await bootGuest(req, { onConsoleLine: log.isDebug ? (l) => log.debug(`console: ${l}`) : undefined })
  const detach = attachStdio(session, opts)
  const unforward = forwardInterrupts(session)
  const outcome = await session.done
  detach()
  unforward()
  if (opts.timing) process.stderr.write(formatTiming(session.timing))
  if (outcome.kind === 'exited') return commandExitCode(outcome.code, outcome.signal)
  reportFailure(outcome, session.consoleTail(20))
  return EXIT_KTSTR_FAILED
}

export function reportFailure(outcome: GuestOutcome, consoleTail: string[]): void {
  process.stderr.write(`ktstr: ${describeOutcome(outcome)}\n`)
  const output = outcome.kind === 'scheduler-failed' || outcome.kind === 'scheduler-exited' ? outcome.exit?.output : undefined
  if (output) process.stderr.write(pc.dim(`--- scheduler output (tail) ---\n${tail(output, 15)}\n`))
  const showConsole = outcome.kind === 'panic' || outcome.kind === 'vm-died' || outcome.kind === 'timeout' || outcome.kind === 'guest-error'
  if (showConsole && consoleTail.length) {
    process.stderr.write(pc.dim(`--- last kernel console lines ---\n${consoleTail.join('\n')}\n`))
  }
}

const tail = (text: string, n: number) => text.split('\n').slice(-n).join('\n')
