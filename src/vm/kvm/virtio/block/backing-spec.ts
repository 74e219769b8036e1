// A Backing described as plain data, so the blk thread can open (and own) it: objects with
// file descriptors and closures do not cross a postMessage.
import fs from 'node:fs'
import { KtstrError } from '../../../../util/errors.js'
import { type Backing, FileBacking } from './backing.js'
import { type FaultSchedule, FaultyBacking } from './faulty-backing.js'

export type BackingSpec =
  /** `fd`: the file already open in this process (the VMM's, holding its lock); borrowed, not closed. */
  | { readonly kind: 'file'; readonly path: string; readonly readOnly?: boolean; readonly fd?: number }
  | { readonly kind: 'faulty'; readonly inner: BackingSpec; readonly schedule: FaultSchedule }

export function openBacking(spec: BackingSpec): Backing {
  switch (spec.kind) {
    case 'file':
      return spec.fd === undefined ? FileBacking.open(spec.path, { readOnly: spec.readOnly ?? false }) : FileBacking.fromFd(spec.path, spec.fd, spec.readOnly ?? false)
    case 'faulty':
      return new FaultyBacking(openBacking(spec.inner), spec.schedule)
  }
}

/** Size and read-only flag of the backing a spec describes, without keeping it open. */
export function describeBacking(spec: BackingSpec): { size: number; readOnly: boolean } {
  if (spec.kind === 'faulty') return describeBacking(spec.inner)
  if (!fs.existsSync(spec.path)) throw new KtstrError(`disk image ${spec.path} does not exist; create it or fix the path`)
  const b = FileBacking.open(spec.path, { readOnly: spec.readOnly ?? false })
  try {
    return { size: b.size, readOnly: b.readOnly }
  } finally {
    b.close()
  }
}

/** The descriptor a backing opened itself and closes in close() (none when borrowed). */
export function ownedFd(b: Backing): number | undefined {
  if (b instanceof FaultyBacking) return ownedFd(b.inner)
  return b instanceof FileBacking && b.owned ? b.fd : undefined
}
