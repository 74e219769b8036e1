// Rows of our VMM (the kvm backend) where this host has no /dev/kvm: the bench runs its `kvm-inner`
// group inside an outer QEMU-TCG guest with nested SVM, as `npm run test:kvm` runs its suite, and
// reports those rows marked "nested". Where /dev/kvm is usable the boot and disk groups have the
// kvm rows themselves and this group adds none.
import path from 'node:path'
import { BAD_TIMERS, OUTER_BOOTS, outerGuestArgv, runOuterGuest } from '../kvm/outer-guest.mjs'
import { referenceQemu } from './boot.mjs'
import { benchDisk } from './disk.mjs'
import { cli, dist, guestKernel, median, quick, repo, reps, timeIt } from './options.mjs'
import { addRow, notRun, rows } from './table.mjs'

const { probeKvm } = await import(dist('src/vm/accel.js'))
const NESTED = '(nested in a TCG guest)'
/**
 * In the outer guest: our VMM's cold boot and warm start, and its virtio-blk rows (the disk group,
 * kvm only). The outer guest's probe (test/kvm/outer-guest.mjs) ran an inner guest first, which
 * also built this guest's image cache.
 */
export async function benchKvmInner() {
  const kernel = guestKernel()
  const exec = (flags) => () => timeIt(process.execPath, [cli, 'exec', '--backend', 'kvm', ...flags, '--', 'true'], { KTSTR_KERNEL: kernel })
  const cold = exec(['--cold'])
  const warm = exec([])
  warm() // makes the snapshot
  const coldTimes = []
  const warmTimes = []
  // A nested boot takes ~40 s under TCG: one in --quick mode.
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    coldTimes.push(cold())
    warmTimes.push(warm(), warm(), warm())
  }
  // Each run, for a row whose median hides a slow one.
  process.stderr.write(`bench kvm-inner: cold ${coldTimes.map((t) => (t / 1000).toFixed(1)).join(' ')} s; warm ${warmTimes.map((t) => (t / 1000).toFixed(1)).join(' ')} s\n`)
  const c = median(coldTimes) / 1000
  addRow('cold boot, kvm (ktstr exec -- true)', c, null, 's')
  addRow('warm start, kvm (ktstr exec -- true)', median(warmTimes) / 1000, null, 's')
  addRow('warm start vs cold boot, kvm', median(warmTimes) / 1000, c, 's', 'cold boot of our VMM in the same outer guest')
  await benchDisk({ backends: ['kvm'] })
}

export async function benchKvmNested() {
  if (probeKvm().usable) return
  const kernel = guestKernel()
  const ref = kernel ? await referenceQemu(kernel) : undefined
  if (!ref) return notRun(`cold boot, kvm ${NESTED}`, 's', 'needs qemu-system-x86_64 and a guest kernel')
  const refTimes = []
  try {
    for (let i = 0; i < reps(3); i++) refTimes.push(timeIt(ref.qemu, ref.argv))
  } finally {
    ref.cleanup()
  }
  // test/kvm/outer-guest.mjs too: this module imports it, inside the outer guest as well.
  const include = ['package.json', 'dist', 'node_modules', 'test/bench', 'test/load', 'test/kvm/outer-guest.mjs'].map((p) => path.join(repo, p))
  const inner = '/tmp/kvm-inner.json'
  const argv = outerGuestArgv({
    repo,
    kernel,
    include,
    timeoutS: 1800,
    script: `"$0" "$1" --quick --json ${inner} kvm-inner >&2 && cat ${inner}`,
    args: [path.join(repo, 'test/bench/main.mjs')],
  })
  let r = await runOuterGuest(argv, { quietStdout: true })
  for (let boot = 2; boot <= OUTER_BOOTS && r.status === BAD_TIMERS; boot++) {
    process.stderr.write(`bench kvm-nested: the probe's inner guest did not return in outer guest boot ${boot - 1}; booting the outer guest again\n`)
    r = await runOuterGuest(argv, { quietStdout: true })
  }
  let innerRows
  try {
    innerRows = JSON.parse(r.stdout).rows
  } catch {
    // Its error's line, else its last line.
    const lines = r.stderr.trim().split('\n')
    const why = lines.find((l) => /^(\w*Error\b|ktstr)/.test(l)) ?? lines.at(-1) ?? `exit ${r.status ?? r.signal}`
    process.stderr.write(`bench kvm-nested: the outer guest's run ended ${r.status ?? r.signal}\n`)
    return notRun(`cold boot, kvm ${NESTED}`, 's', `the outer guest failed: ${why.trim().slice(0, 200)}`)
  }
  for (const row of innerRows) {
    if (/^(cold boot|warm start), kvm \(/.test(row.row)) {
      // No QEMU in the outer guest: the baseline is the busybox reference on this host, TCG.
      addRow(`${row.row} ${NESTED}`, row.value, median(refTimes) / 1000, row.unit, 'QEMU on this host, same kernel, busybox-only initramfs (TCG)')
    } else rows.push({ ...row, row: `${row.row} ${NESTED}`, note: `${row.note}, in the outer guest` })
  }
}
