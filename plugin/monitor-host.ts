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
import { probeKvm } from '../src/vm/accel.js'
import type { GuestSession } from '../src/vm/session.js'

/** Dumps written for failed tests of one guest; the rest just fail (a file of 100 failing tests writes 3). */
const MAX_TEST_DUMPS = 3

export class MonitorHost {
  private readonly server: MonitorServer
  private readonly backend: string
  /** Failed tests (by task id) and their dump's summary. */
  private readonly dumped = new Map<string, string[]>()
  /** The monitor's state once known: dumps are taken synchronously, so Vitest's messages keep their order. */
  private known: MonitorStatus | undefined

  constructor(
    private readonly session: GuestSession,
    private readonly dumpDir: string,
    backend: string,
  ) {
    this.backend = backend === 'auto' ? (probeKvm().usable ? 'kvm' : 'qemu') : backend
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
      if (typeof id !== 'string' || result?.state !== 'fail' || !err || typeof err.message !== 'string') continue
      // Vitest sends a failed test's result more than once: one dump per test, its summary on every copy.
      let lines = this.dumped.get(id)
      if (!lines) {
        if (this.dumped.size >= MAX_TEST_DUMPS) continue
        lines = this.dump(err.message, testFile)
        this.dumped.set(id, lines)
      }
      if (!err.message.includes(lines[0]!)) err.message = `${err.message}\n\n${lines.join('\n')}`
    }
  }

  /** The file failed as a whole (timeout, stall, scheduler exit, panic): its error gets the summary. */
  annotateFile(error: TestError, testFile: string | undefined): TestError {
    // Before the kernel console lines (failure.ts), right under the cause.
    const at = error.message.indexOf('\n\nLast kernel console lines:')
    const [head, tail] = at < 0 ? [error.message, ''] : [error.message.slice(0, at), error.message.slice(at)]
    return { ...error, message: `${head}\n\n${this.dump(head, testFile).join('\n')}${tail}` }
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
