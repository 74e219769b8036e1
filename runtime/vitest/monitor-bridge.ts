/**
 * The guest end of the monitor/bpf API (runtime/protocol/monitor.ts): requests go to the host in
 * Vitest frames, replies come back by id. Published on globalThis for runtime/api, which test files
 * load through Vite's module runner and so cannot take from the worker directly.
 */
import v8 from 'node:v8'
import { KtstrError } from '../protocol/errors.js'
import type { GuestEndpoint } from '../protocol/index.js'
import { MONITOR_KEY, type MonitorBridge, type MonitorOp, type MonitorReply } from '../protocol/monitor.js'
import { ENVELOPE_MARK } from '../protocol/vitest-envelope.js'

export interface InstalledBridge {
  /** Route a reply envelope from the host; false when it is not one. */
  onReply(msg: { [ENVELOPE_MARK]: string }): boolean
  /** Fail the calls still waiting, and unpublish. */
  close(): void
}

export function installMonitorBridge(endpoint: GuestEndpoint): InstalledBridge {
  const calls = new Map<number, (reply: MonitorReply) => void>()
  let nextId = 0
  const bridge: MonitorBridge = {
    call: (op) =>
      new Promise((resolve, reject) => {
        const id = ++nextId
        calls.set(id, (reply) => {
          calls.delete(id)
          if (reply.ok) resolve(reply.value)
          else reject(new KtstrError(reply.message))
        })
        if (!endpoint.sendVitest(v8.serialize({ [ENVELOPE_MARK]: 'monitor', id, ...(op as MonitorOp) }))) {
          calls.delete(id)
          reject(new KtstrError(`the host channel is closed; cannot ask the host for ${op.op}`))
        }
      }),
  }
  const globals = globalThis as Record<symbol, unknown>
  globals[MONITOR_KEY] = bridge
  return {
    onReply(msg) {
      if (msg[ENVELOPE_MARK] !== 'monitor-reply') return false
      const reply = msg as MonitorReply
      calls.get(reply.id)?.(reply)
      return true
    },
    close() {
      for (const [id, settle] of calls) settle({ [ENVELOPE_MARK]: 'monitor-reply', id, ok: false, message: 'ktstr: worker stopped' })
      delete globals[MONITOR_KEY]
    },
  }
}
