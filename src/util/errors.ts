/**
 * KtstrError (one class for host and guest, from runtime/protocol): an error the user can act on,
 * whose message says what went wrong and how to fix it, in one line. Anything else is a bug in
 * ktstr and is reported with its stack under KTSTR_LOG=debug.
 */
import { KtstrError } from '../../runtime/protocol/errors.js'

export { KtstrError }

export function isKtstrError(e: unknown): e is KtstrError {
  return e instanceof KtstrError
}

/** One line for a user: the message of a KtstrError, or a bug marker for anything else. */
export function describeError(e: unknown): string {
  if (isKtstrError(e)) return e.message
  const msg = e instanceof Error ? e.message : String(e)
  return `internal error: ${msg} (re-run with KTSTR_LOG=debug for details)`
}
