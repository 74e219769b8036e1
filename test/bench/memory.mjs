// Memory rows: the host RSS of one guest's VMM (QEMU's peak, VmHWM) and the host memory its guest
// RAM takes (the allocated size of its shared RAM files at the end of the run: pages the guest
// touched, and for a warm start the snapshot's pages), for `ktstr exec -- true` cold and warm; vs
// the busybox reference guest, its RAM also a shared file.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { referenceQemu } from './boot.mjs'
import { cli, guestKernel, median, reps } from './options.mjs'
import { addRow, notRun } from './table.mjs'

/** kB fields of /proc/PID/status, or undefined once the process is gone. */
function status(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (name) => Number(s.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0)
    return { hwm: kb('VmHWM'), ram: ramFilesKb(pid) }
  } catch {
    return undefined
  }
}

/** kB allocated to the files of 64 MiB or more that `pid` holds open: its guest RAM backing files. */
function ramFilesKb(pid) {
  let kb = 0
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const st = fs.statSync(`/proc/${pid}/fd/${fd}`)
      if (st.isFile() && st.size >= 64 * 2 ** 20) kb += (st.blocks * 512) / 1024
    } catch {} // closed meanwhile
  }
  return kb
}

/** The QEMU among `pid` and its children (ktstr execs QEMU as its child). */
function findQemu(pid) {
  const comm = (p) => {
    try {
      return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim()
    } catch {
      return ''
    }
  }
  if (comm(pid).startsWith('qemu')) return pid
  let kids = []
  try {
    kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {}
  return kids.find((k) => comm(k).startsWith('qemu'))
}

/** Runs `cmd argv` to its end, sampling its QEMU every 20 ms: the last {hwm, ram} seen, in MiB. */
async function qemuMemory(cmd, argv, env) {
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: 'ignore' })
  let last
  const timer = setInterval(() => {
    const q = findQemu(child.pid)
    const s = q && status(q)
    if (s && s.hwm > 0) last = s // a zombie's status has no Vm lines
  }, 20)
  const code = await new Promise((r) => child.on('close', r))
  clearInterval(timer)
  if (code !== 0) throw new Error(`${argv.slice(0, 4).join(' ')} exited ${code}`)
  if (!last) throw new Error(`${argv.slice(0, 4).join(' ')}: no QEMU process seen`)
  return { hwm: last.hwm / 1024, ram: last.ram / 1024 }
}

export async function benchMemory() {
  const kernel = guestKernel()
  const ref = kernel ? await referenceQemu(kernel, '/dev/shm') : undefined
  if (!ref) return notRun('host RSS per guest', 'MiB', 'needs qemu-system-x86_64 and a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  try {
    const env = { KTSTR_KERNEL: kernel }
    const refs = []
    for (let i = 0; i < reps(3); i++) refs.push(await qemuMemory(ref.qemu, ref.argv, {}))
    const refHwm = median(refs.map((r) => r.hwm)),
      refRam = median(refs.map((r) => r.ram))
    for (const [name, flags] of [
      ['cold', ['--cold']],
      ['warm', []],
    ]) {
      const runs = []
      for (let i = 0; i < reps(3); i++) runs.push(await qemuMemory(process.execPath, [cli, 'exec', ...flags, '--', 'true'], env))
      addRow(`host RSS per guest, ${name} (QEMU peak)`, median(runs.map((r) => r.hwm)), refHwm, 'MiB', 'busybox reference guest, QEMU peak')
      addRow(`guest RAM held on the host, ${name}`, median(runs.map((r) => r.ram)), refRam, 'MiB', 'busybox reference guest (1 GiB each)')
    }
  } finally {
    ref.cleanup()
  }
}
