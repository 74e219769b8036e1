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
