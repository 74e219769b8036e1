/**
 * What the guest init is asked to do, written by the host into the per-run archive at
 * RUN_SPEC_PATH. Plain JSON.
 */
export const RUN_SPEC_PATH = '/ktstr/run/spec.json'
/** The virtio-serial port name the channel uses (QEMU `virtserialport,name=`). */
export const CHANNEL_PORT_NAME = 'ktstr.0'
/** How the init's own lines on the guest console begin (a template's are logged by the host under KTSTR_LOG=debug). */
export const INIT_CONSOLE_PREFIX = 'ktstr init: '

export interface SchedulerSpec {
  /** How the user named it: `scx_simple` or a path. */
  name: string
  /** Guest path of the binary (same as the host path). */
  path: string
  args: string[]
  /** Expected `/sys/kernel/sched_ext/root/ops`; undefined when unknown (a path). */
  opsName?: string
}

export type RunMode = { kind: 'exec'; argv: string[]; tty: boolean } | { kind: 'shell'; tty: boolean } | { kind: 'vitest'; workerEntry: string }

export interface RunSpec {
  mode: RunMode
  env: Record<string, string>
  cwd: string
  scheduler?: SchedulerSpec
  /** Bound on the scheduler reaching `enabled` with its ops name. */
  attachTimeoutMs: number
}

/**
 * What a warm-start template guest loads before its snapshot, written by the host into the
 * template's initramfs at TEMPLATE_SPEC_PATH (absent: load nothing more). Part of the snapshot's
 * key: a run restored from it has exactly this.
 */
export const TEMPLATE_SPEC_PATH = '/ktstr/template.json'

export interface TemplateSpec {
  /**
   * Vitest's worker modules, imported as a run of this `workerEntry` would import them: with this
   * environment set and in this folder, since modules may read either when imported (colours).
   */
  vitest?: { workerEntry: string; env: Record<string, string>; cwd: string }
}
