/**
 * What a warm-start snapshot is keyed by: everything that shapes the guest before its run starts.
 * The kernel (its bzImage's sha256), the base image (its cache key covers the init code and the
 * node it runs), the topology, memory, the VMM (backend, accel, binary) and how it builds the
 * machine (kernel command line, nested SVM), and what the template loads (a Vitest worker's modules
 * and the environment they were imported with). Guest RAM is always in files for a snapshot. A change in any of them is a new key, so
 * an old snapshot is never served for a changed guest.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import type { TemplateSpec } from '../../../runtime/protocol/spec.js'
import type { TopologySpec } from '../../../runtime/protocol/topology.js'
import { fileSha256 } from '../../util/file-hash.js'

/** Bumped when what a snapshot holds changes meaning (the guest's template protocol). */
export const SNAPSHOT_FORMAT = 2

export interface SnapshotShape {
  kernel: string
  baseImageKey: string
  topology: TopologySpec
  memoryMib: number
  backend: string
  /** The VMM binary (QEMU's path, or our VMM's entry module; its size and mtime stand for its version). */
  vmm: string
  /** How the VMM builds the machine beyond the command line (our VMM: the PV features it withholds). */
  vmmConfig?: string
  cmdline: string
  nestedKvm: boolean
  /** What the template loads before its snapshot (a Vitest run's worker modules, with their environment). */
  template?: TemplateSpec
}

export function snapshotKey(shape: SnapshotShape): string {
  const vmm = fs.statSync(shape.vmm, { throwIfNoEntry: false })
  const parts = {
    format: SNAPSHOT_FORMAT,
    kernel: fileSha256(shape.kernel),
    base: shape.baseImageKey,
    topology: shape.topology,
    memoryMib: shape.memoryMib,
    backend: shape.backend,
    vmm: `${shape.vmm}:${vmm?.size}:${vmm?.mtimeMs}`,
    vmmConfig: shape.vmmConfig ?? null,
    cmdline: shape.cmdline,
    nestedKvm: shape.nestedKvm,
    template: shape.template ?? null,
  }
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32)
}
