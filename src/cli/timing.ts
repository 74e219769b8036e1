/** `--timing`: where the time from request to result went, phase by phase. */
import type { BootTiming } from '../vm/session.js'

export function timingPhases(t: BootTiming): [string, number | undefined][] {
  const kernelStart = t.initMs !== undefined && t.guestKernelMs !== undefined ? t.initMs - t.guestKernelMs : undefined
  const d = (a?: number, b?: number) => (a !== undefined && b !== undefined ? Math.max(0, a - b) : undefined)
  if (t.restoredMs !== undefined) {
    return [
      ['image', t.imageMs],
      // QEMU's start (begun before the image phase ended: they overlap) and its load of the snapshot.
      ['restore', d(t.restoredMs, t.vmStartedMs)],
      // The run's archive sent, unpacked and the clock set in the guest.
      ['resume', d(t.initMs, t.restoredMs)],
      ['init', d(t.commandMs, t.initMs)],
      ['command', d(t.exitMs, t.commandMs)],
      ['power-off', d(t.endMs, t.exitMs)],
      ['total', t.endMs],
    ]
  }
  return [
    ['image', t.imageMs],
    // QEMU's start and firmware, or our VMM's image load and vCPU setup, up to the kernel's first instruction.
    ['vmm start', d(kernelStart, t.vmStartedMs)],
    ['kernel', t.guestKernelMs],
    ['init', d(t.commandMs, t.initMs)],
    ['command', d(t.exitMs, t.commandMs)],
    ['power-off', d(t.endMs, t.exitMs)],
    ['total', t.endMs],
  ]
}

export function formatTiming(t: BootTiming): string {
  const rows = timingPhases(t).map(([name, ms]) => `  ${name.padEnd(10)} ${ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`}`)
  return `ktstr timing:\n${rows.join('\n')}\n`
}
