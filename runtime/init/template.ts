/**
 * The guest side of warm start. A template guest (booted without a run spec) is snapshotted by
 * the host once it reports `template-ready`; every guest restored from that snapshot resumes
 * here, waiting for its run: the per-run archive in Data frames on StreamId.RunArchive, then
 * `start`. The archive is unpacked into / (it holds the run spec), the wall clock — still the
 * template's — is set to the host's, the host's seed is mixed into the random pool (shared by
 * every restore of the snapshot), and the guest continues as a cold-booted one would.
 */
import fs from 'node:fs'
import { CLOCK_REALTIME } from '../../native-shims/constants.js'
import { clockSettime } from '../../native-shims/libc.js'
import { type GuestEndpoint, StreamId } from '../protocol/index.js'
import { unpackCpio } from './unpack.js'

export function awaitRunArchive(endpoint: GuestEndpoint): Promise<void> {
  const chunks: Buffer[] = []
  return new Promise<void>((resolve, reject) => {
    endpoint.on('data', (stream, chunk) => {
      if (stream === StreamId.RunArchive) chunks.push(Buffer.from(chunk))
    })
    endpoint.on('control', (msg) => {
      if (msg.kind !== 'start') return
      try {
        clockSettime(CLOCK_REALTIME, msg.epochMs)
        fs.writeFileSync('/dev/urandom', Buffer.from(msg.seed, 'hex'))
        unpackCpio(Buffer.concat(chunks))
        chunks.length = 0
        resolve()
      } catch (e) {
        reject(new Error(`warm start: ${(e as Error).message}`))
      }
    })
  })
}
