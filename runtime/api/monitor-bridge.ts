/** The host bridge of the monitor/bpf API, as a test file reaches it (published by the guest's Vitest worker). */
import { KtstrError } from '../protocol/errors.js'
import { MONITOR_KEY, type MonitorBridge, type MonitorOp } from '../protocol/monitor.js'

export function bridge(): MonitorBridge | undefined {
  return (globalThis as Record<symbol, MonitorBridge | undefined>)[MONITOR_KEY]
}

/** Ask the host; rejects with its one-line KtstrError (the monitor is off, no such map, …). */
export function ask<T>(op: MonitorOp, what: string): Promise<T> {
  const b = bridge()
  if (!b) return Promise.reject(new KtstrError(`${what} works only in a sched test file run by the ktstr pool (pool: 'ktstr'); the host reads the guest's memory`))
  return b.call(op) as Promise<T>
}
