/** Leaving the guest: PID 1 must never just exit (the kernel would panic), it powers off. */
import fs from 'node:fs'
import { RB_POWER_OFF } from '../../native-shims/constants.js'
import { reboot, sync } from '../../native-shims/libc.js'
import { say } from './say.js'

export function powerOff(): never {
  try {
    sync()
    reboot(RB_POWER_OFF)
  } catch (e) {
    say(`power-off failed (${(e as Error).message}); trying sysrq`)
    try {
      fs.writeFileSync('/proc/sysrq-trigger', 'o')
    } catch {
      /* nothing left to try */
    }
  }
  // reboot(2) does not return on success; if we are still here, hang rather than panic.
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000)
}
