/**
 * Vitest's worker in a node process of its own, for `vitest --inspect`/`--inspect-brk`: the init
 * (runtime/init/worker-child.ts) starts it with a socket on fd 3 that carries the channel's frames.
 * A debugger that pauses this process pauses only this one; the init keeps relaying the debugger's
 * connection, which it could not do while paused itself.
 */
import net from 'node:net'
import { decodeHostMessage, Endpoint, type GuestEndpoint, type GuestMessage, type HostMessage } from '../protocol/index.js'
import { runVitestWorker } from './worker.js'

/** The fd of the socket to the init (stdio[3] of the spawn). */
export const CHILD_CHANNEL_FD = 3

const socket = new net.Socket({ fd: CHILD_CHANNEL_FD, readable: true, writable: true })
const endpoint: GuestEndpoint = new Endpoint<HostMessage, GuestMessage>(socket, decodeHostMessage)
// The init spawned us with the run's environment and folder already.
await runVitestWorker(endpoint, { env: {} })
await endpoint.flush()
process.exit(0)
