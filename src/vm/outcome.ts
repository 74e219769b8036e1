/** Words for how a guest ended, for CLI errors and failed test files alike. */
import type { SchedulerExit } from '../../runtime/protocol/index.js'
import type { GuestOutcome } from './session.js'

export function describeSchedulerExit(e: SchedulerExit): string {
  const how = e.signal ? `killed by ${e.signal}` : e.code === null ? 'no exit status' : `exit code ${e.code}`
  return e.reason ? `${how}; kernel: ${e.reason}` : how
}

export function describeOutcome(o: GuestOutcome): string {
  switch (o.kind) {
    case 'exited':
      return o.signal ? `command killed by ${o.signal}` : `command exited with code ${o.code}`
    case 'scheduler-failed':
      return o.message
    case 'scheduler-exited':
      return `scheduler ${o.scheduler} exited while the guest was running (${describeSchedulerExit(o.exit)})`
    case 'panic':
      return `guest kernel panic: ${o.message}`
    case 'timeout':
      return `guest did not finish within ${o.afterS}s (raise it with --timeout or the docblock's timeout=)`
    case 'vm-died':
    case 'stall':
      return o.message
    case 'channel-corrupt':
      return `host↔guest channel failed: ${o.message}`
    case 'malformed-message':
      return o.message
    case 'guest-error':
      return `guest init failed: ${o.message}`
    case 'stopped':
      return 'guest stopped'
  }
}
