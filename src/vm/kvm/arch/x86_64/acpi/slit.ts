/** SLIT (ACPI 6.5 §5.2.17): relative distances, 10 to itself and 20 to every other node. */
import { sdt } from './sdt.js'

export const SLIT_REVISION = 1
export const LOCAL_DISTANCE = 10
export const REMOTE_DISTANCE = 20

export function buildSlit(nodes: number): Uint8Array {
  return sdt('SLIT', SLIT_REVISION, (w) => {
    w.u64(nodes)
    for (let i = 0; i < nodes; i++) for (let j = 0; j < nodes; j++) w.u8(i === j ? LOCAL_DISTANCE : REMOTE_DISTANCE)
  })
}
