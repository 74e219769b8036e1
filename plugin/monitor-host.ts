/**
 * The pool's side of the monitor for one guest: serves the test file's monitor/bpf requests
 * (src/monitor/serve.ts) and writes a failure dump (src/monitor/dump.ts) when a test or the whole
 * file fails, putting the dump's summary into the failure Vitest shows.
 */
import path from 'node:path'
import type { RunnerTaskResultPack, TestError } from 'vitest'
import type { MonitorRequest } from '../runtime/protocol/monitor.js'
import type { MonitorStatus } from '../src/monitor/attach.js'
import { collectDump, dumpSummary } from '../src/monitor/dump.js'
import { writeDump } from '../src/monitor/dump-file.js'
import { MonitorServer } from '../src/monitor/serve.js'
import { describeError } from '../src/util/errors.js'
import { log } from '../src/util/log.js'
import type { GuestSession } from '../src/vm/session.js'

/** Dumps written for failed tests of one guest; the rest just fail (a file of 100 failing tests writes 3). */
const MAX_TEST_DUMPS = 3

export class MonitorHost {
  private readonly server: MonitorServer
  /** Failed tests (by task id) and their dump's summary. */
  private readonly dumped = new Map<string, string[]>()
  /** The monitor's state once known: dumps are taken synchronously, so Vitest's messages keep their order. */
  private known: MonitorStatus | undefined

  constructor(
    private readonly session: GuestSession,
    private readonly dumpDir: string,
    private readonly backend: string,
  ) {
    this.server = new MonitorServer(() => this.status())
    void this.status().then((s) => (this.known = s))
  }

  /** Sessions made by test stand-ins may have no monitor at all. */
  status(): Promise<MonitorStatus | undefined> {
    return Promise.resolve(this.session.monitor)
  }

  serve(req: MonitorRequest): Promise<unknown> {
    return this.server.serve(req)
  }

  /**
   * A failed test in an onTaskUpdate from the guest: dump now (the guest still runs, its maps are
   * there) and add the summary to the test's first error, which Vitest prints.
   */
  annotateFailures(args: unknown[], testFile: string | undefined): void {
    const packs = Array.isArray(args[0]) ? (args[0] as RunnerTaskResultPack[]) : []
    for (const pack of packs) {
      const [id, result] = Array.isArray(pack) ? pack : []
      const err = result?.errors?.[0]
      if (typeof id !== 'string' || result?.state !== 'fail' || !err || typeof err.message !== 'string' || !this.known?.on) continue
      // Vitest sends a failed test's result more than once: one dump per test, its summary on every copy.
      let lines = this.dumped.get(id)
      if (!lines) {
        if (this.dumped.size >= MAX_TEST_DUMPS) continue
        lines = this.dump(err.message, testFile)
        this.dumped.set(id, lines)
      }
      if (err.message.includes(lines[0]!)) continue
      const message = `${err.message}\n\n${lines.join('\n')}`
      // Reporters that print the stack (json, junit) see it there too: the guest's stack starts with the message.
      if (typeof err.stack === 'string' && err.stack.includes(err.message)) err.stack = err.stack.replace(err.message, () => message)
      err.message = message
    }
  }

  /** The file failed as a whole (timeout, stall, scheduler exit, panic): its error gets the summary. */
  annotateFile(error: TestError, testFile: string | undefined): TestError {
    // A boot failure, or the monitor off (its reason is in the log): nothing the host could add.
    if (!this.known?.on) return error
    const lines = this.dump(head(error.message), testFile)
    // Before the kernel console lines (failure.ts), right under the cause.
    const cause = head(error.message)
    return { ...error, message: `${cause}\n\n${lines.join('\n')}${error.message.slice(cause.length)}` }
  }

  private dump(cause: string, testFile: string | undefined): string[] {
    try {
      const d = collectDump({ cause, monitor: this.known, backend: this.backend, ...(testFile && { testFile }) })
      const file = writeDump(d, this.dumpDir, testFile ? path.basename(testFile) : 'guest')
      return dumpSummary(d, file)
    } catch (e) {
      log.debug(`ktstr: failure dump not written: ${describeError(e)}`)
      return [`ktstr dump not written: ${describeError(e)}`]
    }
  }
}

/** A file failure's message without the kernel console lines failure.ts appends. */
function head(message: string): string {
  const at = message.indexOf('\n\nLast kernel console lines:')
  return at < 0 ? message : message.slice(0, at)
}
