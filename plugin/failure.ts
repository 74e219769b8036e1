/**
 * The error a test file fails with when its guest does: one line that says what happened and what
 * to do, then the kernel's last console lines. Shaped as Vitest's serialized errors are.
 */
import type { TestError } from 'vitest'
import { isKtstrError } from '../src/util/errors.js'
import { BootFailure } from '../src/vm/boot-failure.js'
import { describeOutcome } from '../src/vm/outcome.js'
import type { GuestOutcome } from '../src/vm/session.js'

export function ktstrError(message: string, consoleTail?: string[]): TestError {
  const tail = consoleTail?.length ? `\n\nLast kernel console lines:\n${consoleTail.map((l) => `  ${l}`).join('\n')}` : ''
  return { name: 'KtstrError', message: message + tail, stack: '' }
}

/** How a guest ended, when that ended its test file. */
export function outcomeFailure(o: GuestOutcome, consoleTail: string[]): TestError {
  const output = (e?: { output: string }) => (e?.output ? `\n${e.output.trimEnd()}` : '')
  switch (o.kind) {
    case 'scheduler-failed':
      return ktstrError(`scheduler ${o.scheduler} failed to start: ${o.message}${output(o.exit)}`, consoleTail)
    case 'scheduler-exited':
      return ktstrError(`${describeOutcome(o)}${output(o.exit)}`, consoleTail)
    case 'timeout':
      return ktstrError(`the test file did not finish within ${o.afterS}s; raise the limit with \`@ktstr timeout=N\` or ktstr({ timeout })`, consoleTail)
    case 'exited':
    case 'stopped':
      return ktstrError(`the guest shut down before the test file finished (${describeOutcome(o)})`, consoleTail)
    default:
      return ktstrError(describeOutcome(o), consoleTail)
  }
}

/** Anything else that stopped a file: a boot failure, bad input, a Vitest error from the guest, a bug. */
export function failureFrom(e: unknown): TestError {
  if (e instanceof BootFailure) return ktstrError(e.message, e.consoleTail)
  if (isKtstrError(e)) return ktstrError(e.message)
  if (e instanceof Error) return { ...ktstrError(`internal error in the ktstr pool: ${e.message}`), stack: e.stack ?? '' }
  if (typeof e === 'object' && e !== null && 'message' in e) return e as TestError // already a Vitest error
  return ktstrError(String(e))
}
