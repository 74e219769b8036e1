/**
 * An error a test author can act on: one line saying what is wrong and how to fix it. The guest-side
 * twin of src/util/errors.ts (runtime/ may not import src/); same name, so both read alike in output.
 */
export class KtstrError extends Error {
  override readonly name = 'KtstrError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
