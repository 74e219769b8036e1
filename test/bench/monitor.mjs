// Monitor row: guest work units (loop iterations of two spinners, one per CPU) with the host
// monitor sampling at 10 Hz vs off, guests alternating in the same run.
import { execOut, guestKernel, median, reps } from './options.mjs'
import { addRow, notRun } from './table.mjs'

// One spinner per CPU counts loop iterations for 3 s; the guest prints their sum.
const SPIN = `let n=0;const t=Date.now();while(Date.now()-t<3000)n++;console.log(n)`
const SPINNERS = `for i in 1 2; do node -e '${SPIN}' & done | awk '{s+=$1} END {print s}'`

function workUnits(kernel, hz) {
  const n = Number(execOut(kernel, ['--topology', '1n1l2c1t', '--monitor-hz', hz], ['sh', '-c', SPINNERS]).trim().split('\n').at(-1))
  if (!(n > 0)) throw new Error(`ktstr exec --monitor-hz ${hz}: the guest printed no work units`)
  return n
}

export async function benchMonitor() {
  const kernel = guestKernel()
  if (!kernel) return notRun('guest work units, monitor 10 Hz', 'M', 'needs a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  const on = [],
    off = []
  for (let i = 0; i < reps(3); i++) {
    off.push(workUnits(kernel, 'off'))
    on.push(workUnits(kernel, '10'))
  }
  addRow('guest work units, monitor 10 Hz', median(on) / 1e6, median(off) / 1e6, 'M', 'monitor off (loop iterations, 2 spinners, 3 s)')
}
