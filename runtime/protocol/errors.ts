/**
 * An error a user can act on: one line saying what is wrong and how to fix it. The one class for
 * host (src/util/errors.ts re-exports it) and guest (runtime/api), shared through runtime/protocol.
 */
export class KtstrError extends Error {
  override readonly name = 'KtstrError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/**
 * The guest sent a message the host cannot accept (the guest is not trusted): one line,
 * `guest sent a malformed <kind> message: <what is wrong>`.
 */
export class MalformedMessage extends KtstrError {
  constructor(
    readonly kind: string,
    readonly detail: string,
  ) {
    super(`guest sent a malformed ${kind} message: ${detail}`)
  }
}
