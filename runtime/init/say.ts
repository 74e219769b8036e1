/** The init's own lines on the guest console (its stderr is the kernel console). */
import { INIT_CONSOLE_PREFIX } from '../protocol/index.js'

export function say(message: string): void {
  process.stderr.write(`${INIT_CONSOLE_PREFIX}${message}\n`)
}
