import { constants } from 'node:os'

/** Like `docker run`: the command's own status, or 125 when ktstr (not the command) failed. */
export const EXIT_KTSTR_FAILED = 125
export const EXIT_USAGE = 2

/** A guest command's status as a shell reports it: 128 + signal number when killed. */
export function commandExitCode(code: number | null, signal: string | null): number {
  if (signal) return 128 + ((constants.signals as Record<string, number>)[signal] ?? 0)
  return code ?? EXIT_KTSTR_FAILED
}
