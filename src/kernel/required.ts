import type { KernelConfig } from './config.js'

/**
 * Options a ktstr guest kernel cannot do without, all built in (=y). `ktstr kernel build` checks them
 * after `make olddefconfig` and again on the .config the build wrote: olddefconfig drops options
 * silently when a dependency is missing (e.g. DEBUG_INFO_BTF without a usable pahole, which also
 * takes SCHED_CLASS_EXT with it).
 */
export const REQUIRED_OPTIONS: readonly string[] = [
  // sched_ext and the BPF it runs on
  'SCHED_CLASS_EXT',
  'BPF',
  'BPF_SYSCALL',
  'BPF_JIT',
  'DEBUG_INFO_BTF',
  // how the host talks to the guest
  'SERIAL_8250',
  'SERIAL_8250_CONSOLE',
  'VIRTIO',
  'VIRTIO_MMIO',
  'VIRTIO_MMIO_CMDLINE_DEVICES',
  'VIRTIO_CONSOLE',
  'VIRTIO_BLK',
  'BLK_DEV_INITRD',
  'DEVTMPFS',
  'TMPFS',
  'BINFMT_ELF',
  // topology, cgroups and the statistics the tests read
  'SMP',
  'NUMA',
  'ACPI',
  'ACPI_NUMA',
  'CGROUPS',
  'CGROUP_SCHED',
  'CPUSETS',
  'SCHEDSTATS',
]

/** The required options (without the `CONFIG_` prefix) that are not `=y` in `config`. */
export function missingRequired(config: KernelConfig, required: readonly string[] = REQUIRED_OPTIONS): string[] {
  return required.filter((name) => config.get(`CONFIG_${name}`) !== 'y')
}

export function hasSchedExt(config: KernelConfig): boolean {
  return config.get('CONFIG_SCHED_CLASS_EXT') === 'y'
}

/**
 * Fragment settings that did not stick in `config` (e.g. `CONFIG_X=y` wanted, `n` or absent found).
 * `# CONFIG_X is not set` in the fragment is satisfied by an absent option as well.
 */
export function unmetFragmentSettings(fragment: KernelConfig, config: KernelConfig): string[] {
  const out: string[] = []
  for (const [name, want] of fragment) {
    const got = config.get(name) ?? 'n'
    if (got !== want) out.push(`${name}=${want} (got ${got})`)
  }
  return out
}
