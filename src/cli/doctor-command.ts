/** `ktstr doctor`: is this machine ready to boot guests, and if not, what to install. */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import pc from 'picocolors'
import { resolveKernel } from '../kernel/resolve.js'
import { listSchedulers } from '../kernel/schedulers.js'
import { describeError } from '../util/errors.js'
import { MIN_NODE, nodeTooOld } from '../util/node-version.js'
import { packageRoot } from '../util/paths.js'
import { which } from '../util/which.js'
import { probeKvm } from '../vm/accel.js'
import { QEMU_BINARY } from '../vm/qemu/backend.js'

interface Check {
  name: string
  ok: boolean
  /** Informational checks never fail the doctor. */
  required: boolean
  detail: string
}

export async function doctorCommand(): Promise<number> {
  const checks: Check[] = []
  const add = (name: string, ok: boolean, detail: string, required = true) => checks.push({ name, ok, required, detail })

  const tooOld = nodeTooOld()
  add('node', !tooOld, tooOld ?? `v${process.versions.node} (ktstr needs >= ${MIN_NODE})`)

  const qemu = which(QEMU_BINARY)
  const qemuVersion = qemu ? spawnSync(qemu, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] : undefined
  add('qemu', !!qemu, qemu ? `${qemu} (${qemuVersion})` : `${QEMU_BINARY} missing: apt-get install qemu-system-x86`)

  const setpriv = which('setpriv')
  add('setpriv', !!setpriv, setpriv ? `${setpriv}: QEMU dies with ktstr` : 'setpriv missing (apt-get install util-linux): QEMU outlives a ktstr killed with SIGKILL', false)

  const kvm = probeKvm()
  add('kvm', kvm.usable, kvm.usable ? '/dev/kvm usable: guests run with hardware acceleration' : `${kvm.reason}; guests run under TCG (slower)`, false)

  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p))
  add('busybox', !!busybox, busybox ?? 'busybox missing: apt-get install busybox-static')

  const init = path.join(packageRoot(), 'dist', 'runtime', 'init', 'main.js')
  add('build', fs.existsSync(init), fs.existsSync(init) ? 'compiled runtime present' : `${init} missing: npm run build`)

  try {
    const { koffi } = await import('../../native-shims/koffi.js')
    koffi()
    add('koffi', true, 'native FFI loads')
  } catch (e) {
    add('koffi', false, `koffi does not load (${(e as Error).message}); reinstall with npm ci (optional dependencies included)`)
  }

  try {
    const kernel = await resolveKernel()
    const scheds = listSchedulers(kernel)
    add('kernel', true, `${kernel.bzImage} (from ${kernel.origin}), sched_ext enabled`)
    add('schedulers', scheds.length > 0, scheds.length ? scheds.join(', ') : `none beside the kernel; \`ktstr kernel build\` builds them`, false)
  } catch (e) {
    add('kernel', false, describeError(e))
  }

  for (const c of checks) {
    const mark = c.ok ? pc.green('✓') : c.required ? pc.red('✗') : pc.yellow('!')
    process.stdout.write(`${mark} ${c.name.padEnd(10)} ${c.detail}\n`)
  }
  const failed = checks.filter((c) => c.required && !c.ok)
  if (failed.length) process.stdout.write(`\n${failed.length} problem(s): fix the ✗ lines above, then run ktstr doctor again.\n`)
  return failed.length ? 1 : 0
}
