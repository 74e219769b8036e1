/**
 * `ktstr exec --dump DIR`: a failure dump of one guest session. A command that exits non-zero is
 * dumped as soon as the guest says so, while the scheduler's maps are still in guest RAM; a guest
 * that ends otherwise (timeout, stall, panic, scheduler exit) gets what the host still has: the
 * monitor's last per-CPU samples.
 */
import type { GuestMessage } from '../../runtime/protocol/index.js'
import { describeOutcome } from '../vm/outcome.js'
import type { GuestOutcome, GuestSession } from '../vm/session.js'
import type { MonitorStatus } from './attach.js'
import { collectDump, dumpSummary, type FailureDump } from './dump.js'
import { writeDump } from './dump-file.js'

export interface SessionDump {
  /** Write the dump if the session failed; the summary lines to print (none when it did not fail). */
  finish(outcome: GuestOutcome): string[]
}

export function dumpOnFailure(session: GuestSession, dir: string, label: string, backend: string): SessionDump {
  let status: MonitorStatus | undefined
  void session.monitor.then((s) => (status = s))
  let early: FailureDump | undefined
  const onControl = (m: GuestMessage) => {
    if (m.kind === 'exit' && (m.code !== 0 || m.signal) && !early) {
      early = collectDump({ cause: `the command exited with ${m.signal ?? `code ${m.code}`}`, monitor: status, backend })
    }
  }
  session.channel.on('control', onControl)
  return {
    finish(outcome) {
      session.channel.off('control', onControl)
      if (outcome.kind === 'exited' && outcome.code === 0 && !outcome.signal) return []
      const dump = early ?? collectDump({ cause: describeOutcome(outcome), monitor: status, backend })
      return dumpSummary(dump, writeDump(dump, dir, label))
    },
  }
}
