import { KtstrError } from '../util/errors.js'
import type { GuestOutcome } from './session.js'

/** The guest never got as far as its init saying hello. Carries the console tail for the report. */
export class BootFailure extends KtstrError {
  constructor(
    message: string,
    readonly outcome: GuestOutcome,
    readonly consoleTail: string[],
  ) {
    super(message)
  }
}
