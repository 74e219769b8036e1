// Boot rows: `ktstr exec -- true` (node PID 1, runtime, channel) cold, warm (restored from the
// snapshot of its shape) and from the base disk, vs QEMU booting the same kernel with a busybox-only
// initramfs whose /init powers off at once (same accel, topology and memory).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cli, dist, guestKernel, median, reps, timeIt } from './options.mjs'
import { addRow, notRun } from './table.mjs'

const { CpioWriter, MemorySink } = await import(dist('src/image/cpio.js'))
const { probeKvm } = await import(dist('src/vm/accel.js'))
const { which } = await import(dist('src/util/which.js'))

async function baselineInitrd(file) {
  const sink = new MemorySink()
  const w = new CpioWriter(sink)
  await w.dir('dev')
  await w.charDev('dev/console', 5, 1)
  await w.dir('bin')
  await w.dir('proc')
  await w.fileFromPath('bin/busybox', '/bin/busybox', 0o755)
  await w.file('init', '#!/bin/busybox sh\n/bin/busybox poweroff -f\n', 0o755)
  await w.finish()
  fs.writeFileSync(file, sink.toBuffer())
}

/**
 * The reference: QEMU, the same kernel, the busybox initramfs, 2 CPUs and 1 GiB as `ktstr exec`'s
 * default shape. Returns its argv and a cleanup; `ram` backs guest RAM with a shared file there,
 * as ktstr does, so the host's count of touched guest pages compares.
 */
export async function referenceQemu(kernel, ram) {
  const qemu = which('qemu-system-x86_64')
  if (!qemu) return undefined
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-'))
  const initrd = path.join(tmp, 'baseline.cpio')
  await baselineInitrd(initrd)
  const bz = fs.statSync(kernel).isDirectory() ? path.join(kernel, 'bzImage') : kernel
  const accel = probeKvm().usable ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', 'max']
  const memory = ram
    ? ['-object', `memory-backend-file,id=ram0,size=1024M,share=on,mem-path=${path.join(ram, `ktstr-bench-ram-${process.pid}`)}`, '-machine', 'memory-backend=ram0']
    : []
  const argv = [
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-machine', 'pc', ...accel],
    ...['-smp', 'cpus=2,sockets=1,dies=1,cores=2,threads=1', '-m', '1024M', ...memory],
    ...['-kernel', bz, '-initrd', initrd, '-append', 'console=ttyS0 quiet panic=-1 reboot=k', '-serial', 'null'],
  ]
  return {
    qemu,
    argv,
    cleanup: () => {
      fs.rmSync(tmp, { recursive: true, force: true })
      if (ram) fs.rmSync(path.join(ram, `ktstr-bench-ram-${process.pid}`), { force: true })
    },
  }
}

export async function benchBoot() {
  const kernel = guestKernel()
  const ref = kernel ? await referenceQemu(kernel) : undefined
  if (!ref) return notRun('cold boot', 's', 'needs qemu-system-x86_64 and a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  try {
    const kvm = probeKvm().usable
    const exec =
      (backend, extra = {}, flags = ['--cold']) =>
      () =>
        timeIt(process.execPath, [cli, 'exec', '--backend', backend, ...flags, '--', 'true'], { KTSTR_KERNEL: kernel, ...extra })
    const variants = [
      ['cold boot, qemu', exec('qemu')],
      // From the snapshot of its shape (made by the warm-up run below).
      ['warm start, qemu', exec('qemu', {}, [])],
      ['cold boot, qemu, base disk', exec('qemu', { KTSTR_BASE_DISK: '1' })],
    ]
    if (kvm) variants.push(['cold boot, kvm', exec('kvm')], ['warm start, kvm', exec('kvm', {}, [])], ['cold boot, kvm, base disk', exec('kvm', { KTSTR_BASE_DISK: '1' })])
    for (const [, run] of variants) run() // build the cached images and the snapshot first
    const baseline = []
    const times = variants.map(() => [])
    for (let i = 0; i < reps(5); i++) {
      baseline.push(timeIt(ref.qemu, ref.argv))
      variants.forEach(([, run], j) => times[j].push(run()))
    }
    const b = median(baseline) / 1000
    const what = `QEMU, same kernel, busybox-only initramfs (${kvm ? 'KVM' : 'TCG'})`
    variants.forEach(([name], j) => addRow(`${name} (ktstr exec -- true)`, median(times[j]) / 1000, b, 's', what))
    if (!kvm) {
      notRun('cold boot, kvm', 's', 'no /dev/kvm here (npm run test:kvm runs our VMM nested)')
      notRun('warm start, kvm', 's', 'no /dev/kvm here (the kvm-nested group measures it nested)')
    }
  } finally {
    ref.cleanup()
  }
}
