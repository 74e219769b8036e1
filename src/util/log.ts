/** Quiet by default: debug lines appear only with KTSTR_LOG=debug. */
const debugEnabled = () => process.env.KTSTR_LOG === 'debug'

export const log = {
  debug(...args: unknown[]): void {
    if (debugEnabled()) process.stderr.write(`[ktstr] ${args.map(String).join(' ')}\n`)
  },
  warn(msg: string): void {
    process.stderr.write(`ktstr: warning: ${msg}\n`)
  },
  get isDebug(): boolean {
    return debugEnabled()
  },
}
