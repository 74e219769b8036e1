/** What `exec` and `shell` share: boot, wire stdio and signals, wait, report. */
import pc from 'picocolors'
import { log } from '../util/log.js'
import { probeKvm } from '../vm/accel.js'
import { bootGuest } from '../vm/boot.js'
import { describeOutcome } from '../vm/outcome.js'
import type { GuestOutcome, GuestSession } from '../vm/session.js'
import type { VmRequest } from '../vm/spec/request.js'
import { commandExitCode, EXIT_KTSTR_FAILED } from './exit-codes.js'
import { attachStdio } from './guest-stdio.js'
import { handleSignals } from './signals.js'
import { formatTiming } from './timing.js'

export async function runGuest(req: VmRequest, opts: { forwardStdin: boolean; timing: boolean; monitor?: boolean; dump?: string }): Promise<number> {
  // With QEMU, from before the image build: a signal at any phase must take the VM and its run
  // folder with it. Our kvm VMM runs in this process (it dies with it) and its run folder goes at
  // launch; its nested-guest test runs (npm run test:kvm) hang when the listeners exist before its
  // vCPU threads start, so there they come after the boot, as they always did.
  let signals = usesOwnVmm(req) ? undefined : handleSignals()
  try {
    const session = await bootGuest(req, { onConsoleLine: log.isDebug ? (l) => log.debug(`console: ${l}`) : undefined })
    signals ??= handleSignals()
    signals.attach(session)
    const detach = attachStdio(session, opts)
    // The monitor's dump and table code (~40 ms of module loading) only when asked for.
    const dump = opts.dump ? (await import('../monitor/dump-session.js')).dumpOnFailure(session, opts.dump, 'exec', req.backend ?? 'auto') : undefined
    const outcome = await session.done
    for (const line of dump?.finish(outcome) ?? []) process.stderr.write(`ktstr: ${line}\n`)
    detach()
    if (opts.monitor) process.stderr.write((await import('../monitor/table.js')).monitorTable(await session.monitor))
    return result(outcome, session, opts)
  } finally {
    signals?.remove()
  }
}

function usesOwnVmm(req: VmRequest): boolean {
  return req.backend === 'kvm' || ((req.backend ?? 'auto') === 'auto' && probeKvm().usable)
}

function result(outcome: GuestOutcome, session: GuestSession, opts: { timing: boolean }): number {
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
