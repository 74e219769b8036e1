/**
 * After a command exits, what it wrote is still in its pipes; but a background process it left
 * (`sleep 1000 &`) may hold them open for ever. So read on until both streams end or go quiet —
 * idle for IDLE_MS with one more I/O poll after that, capped at MAX_MS — then stop reading.
 */
import type { Readable } from 'node:stream'

const IDLE_MS = 100
const MAX_MS = 2000

export function drainOutput(streams: Readable[]): Promise<void> {
  return new Promise((resolve) => {
    let open = streams.filter((s) => !s.readableEnded && !s.destroyed).length
    let chunks = 0
    let idle: NodeJS.Timeout | undefined
    const onData = () => chunks++
    const finish = () => {
      clearTimeout(idle)
      clearTimeout(cap)
      for (const s of streams) {
        s.off('data', onData)
        s.off('close', onClose)
        s.destroy()
      }
      resolve()
    }
    const onClose = () => {
      if (--open <= 0) finish()
    }
    // A timer can fire before the poll phase that reads bytes already waiting (a descheduled
    // guest): only call the output quiet when a poll pass after the timer brought nothing either.
    const watchIdle = () => {
      const seen = chunks
      idle = setTimeout(() => setImmediate(() => (chunks === seen ? finish() : watchIdle())), IDLE_MS)
    }
    const cap = setTimeout(finish, MAX_MS)
    if (open === 0) return finish()
    for (const s of streams) {
      s.on('data', onData)
      s.once('close', onClose)
    }
    watchIdle()
  })
}
