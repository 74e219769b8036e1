/**
 * Vitest's snapshot environment for ktstr guests (set as `snapshotEnvironment`; Vitest imports it in
 * the guest, natively: it is one of the runtime modules Vite leaves external, and a warm-start
 * template has it loaded already). Snapshot files, and test files rewritten for inline
 * snapshots, are read and written on the host over the channel: a write inside the guest would be
 * lost with the guest while Vitest still reported it as written.
 */
import { VitestSnapshotEnvironment } from 'vitest/runtime'
import { HOST_FS_KEY, type HostFsBridge } from '../protocol/vitest-envelope.js'

function host(): HostFsBridge {
  const bridge = (globalThis as Record<symbol, unknown>)[HOST_FS_KEY] as HostFsBridge | undefined
  if (!bridge) throw new Error('ktstr snapshot environment used outside a ktstr guest (no host file bridge)')
  return bridge
}

class KtstrSnapshotEnvironment extends VitestSnapshotEnvironment {
  override async prepareDirectory(): Promise<void> {
    // The host creates folders as it writes.
  }

  override readSnapshotFile(filepath: string): Promise<string | null> {
    return host().read(filepath)
  }

  override saveSnapshotFile(filepath: string, snapshot: string): Promise<void> {
    return host().write(filepath, snapshot)
  }

  override removeSnapshotFile(filepath: string): Promise<void> {
    return host().remove(filepath)
  }
}

export default new KtstrSnapshotEnvironment()
