/**
 * Guest RAM of a QEMU guest in files this process maps too, so the host reads (and writes) guest
 * memory without the guest's help: one file per NUMA node, which QEMU takes as a
 * `memory-backend-file` with share=on (topology-args.ts). The files live in a run folder on
 * tmpfs (/dev/shm when it has room: guest writes then never cause disk writeback; see
 * ramFolderParent), are unlinked once QEMU has opened them (unlink()), and a folder left by a
 * killed host is swept at the next start (run-dir.ts).
 */
import path from 'node:path'
import { munmap } from '../../../native-shims/libc.js'
import type { TopologySpec } from '../../../runtime/protocol/topology.js'
import { KtstrError } from '../../util/errors.js'
import { copyDataInto } from '../../util/sparse-copy.js'
import { GuestMemory, type GuestRegion } from '../memory/guest-memory.js'
import { createSharedFile, ramFolderParent } from '../memory/shared-file.js'
import { nativeRegions } from '../memory/views.js'
import { createRunDir, removeRunDir } from '../run-dir.js'
import { pcRamPieces } from './ram-layout.js'
import { nodeMemoryMib } from './topology-args.js'

const MiB = 2 ** 20

export interface QemuRam {
  /** The backend files in node order (what `mem-path=` names). */
  readonly files: readonly string[]
  /** Guest RAM at its guest-physical addresses (ram-layout.ts). */
  readonly memory: GuestMemory
  /** Remove the files' folder (QEMU and this process keep their mappings); idempotent. */
  unlink(): void
  /** Release `memory` and unmap the files (the VM is gone); idempotent. Unlinks too. */
  release(): void
}

export function createQemuRam(topology: TopologySpec, memoryMib: number, parent = ramFolderParent(memoryMib * MiB)): QemuRam {
  return mapRamFiles(topology, memoryMib, ramFolder(parent))
}

function ramFolder(parent: string): string {
  try {
    return createRunDir(parent)
  } catch (e) {
    throw new KtstrError(`cannot create the guest's RAM files in ${parent}: ${(e as Error).message}`)
  }
}

/**
 * Fills the (empty) RAM files of a guest to be restored with a snapshot's data (`sources`, its RAM
 * files in node order), while QEMU has them mapped: QEMU touches them only once the guest runs.
 */
export async function fillQemuRam(ram: QemuRam, sources: readonly string[]): Promise<void> {
  if (sources.length !== ram.files.length) throw new Error(`the snapshot has ${sources.length} RAM files, the guest ${ram.files.length}`)
  await Promise.all(sources.map((src, n) => copyDataInto(src, ram.files[n]!)))
}

const ramFile = (folder: string, node: number) => path.join(folder, `ram-node${node}`)

/** Creates and maps each node's file in `folder`; on failure the folder is removed. */
function mapRamFiles(topology: TopologySpec, memoryMib: number, folder: string): QemuRam {
  const sizes = Array.from({ length: topology.numaNodes }, (_, n) => nodeMemoryMib(memoryMib, topology.numaNodes, n) * MiB)
  const maps: { addr: bigint; size: number }[] = []
  let memory: GuestMemory | undefined
  const unlink = () => removeRunDir(folder)
  const release = () => {
    memory?.release()
    for (const m of maps.splice(0)) munmap(m.addr, m.size)
    unlink()
  }
  try {
    const files = sizes.map((size, n) => {
      const file = ramFile(folder, n)
      maps.push({ addr: createSharedFile(file, size), size })
      return file
    })
    const regions: GuestRegion[] = pcRamPieces(sizes).flatMap((p) => nativeRegions(maps[p.backend]!.addr + BigInt(p.fileOffset), p.gpa, p.size))
    memory = new GuestMemory(regions)
    return { files, memory, unlink, release }
  } catch (e) {
    release()
    throw new KtstrError(`cannot create the guest's RAM files in ${path.dirname(folder)}: ${(e as Error).message}`)
  }
}
