// Types of outer-guest.mjs for the TypeScript tests that import it (test/kvm-outer/).
export declare const BAD_TIMERS: number
export declare const OUTER_BOOTS: number
export interface OuterGuestResult {
  status: number | null
  signal: NodeJS.Signals | null
  /** Stopped after printing nothing for `silenceMs`. */
  silent: boolean
  stdout: string
  stderr: string
}
export declare function outerGuestArgv(opts: {
  repo: string
  kernel: string
  include?: string[]
  memoryMib?: number
  timeoutS?: number
  env?: Record<string, string>
  script: string
  args?: string[]
}): string[]
export declare function runOuterGuest(argv: string[], opts?: { env?: NodeJS.ProcessEnv; quietStdout?: boolean; cwd?: string; silenceMs?: number }): Promise<OuterGuestResult>
export declare const doneFiles: (out: string) => Set<string>
