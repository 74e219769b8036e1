/**
 * The VM to boot, as a user asks for it. `VmSpec` is what a test file's `@ktstr` docblock, the
 * plugin's options and the CLI's flags set (all parsed by ./parse.ts); `VmRequest` adds what runs
 * in it. A backend gets a LaunchPlan (../backend.ts); the guest's init gets a RunSpec (runtime/protocol).
 */
import type { RunMode } from '../../../runtime/protocol/index.js'
import type { DiskSpec } from '../disk.js'

export type BackendName = 'qemu' | 'kvm' | 'auto'

export interface VmSpec {
  /** A bzImage path or a kernel cache key. */
  kernel?: string
  backend?: BackendName
  /** `NnNlNcNt` (e.g. `1n2l4c1t`) or a gauntlet preset name. */
  topology?: string
  memoryMib?: number
  /**
   * `scx_simple`, another name from the kernel's `scx/`, or a host path. Undefined = EEVDF; null
   * (a docblock's `scheduler=eevdf`) = EEVDF whatever the plugin's default says.
   */
  scheduler?: string | null
  schedArgs?: string[]
  /** Whole-guest wall clock limit, seconds. */
  timeoutS?: number
  /**
   * Host files or directories for this run only, at the same paths in the guest; executables
   * bring their ELF library closure.
   */
  include?: string[]
  /** virtio-blk disks, in order: /dev/vda, /dev/vdb, … */
  disks?: DiskSpec[]
  /** The host's stall watchdog threshold in ms (default 2000), or off. */
  stallMs?: number | 'off'
  /** The host monitor's samples per second (default 10), or off (no monitor, no stall watchdog). */
  monitorHz?: number | 'off'
  /** Start from a snapshot of a booted guest of the same shape when the backend can (default true). */
  warm?: boolean
}

export interface VmRequest extends VmSpec {
  /** Host paths the cached base image must also hold (at the same paths): rarely changing runtime files. */
  extraImagePaths?: string[]
  /** Give the guest a virtual CPU with AMD SVM so it can run KVM itself (nested virtualisation). */
  nestedKvm?: boolean
  mode: RunMode
  env?: Record<string, string>
  cwd?: string
}
