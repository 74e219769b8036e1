#!/usr/bin/env node
// `npm run bench [-- --quick] [-- ROW]`: ktstr's costs as ratios against baselines measured in the
// same run, printed as one table and written as JSON (bench-results.json, or --json FILE).
//  1. channel: MiB/s through Endpoint frames (CRC32, framing) vs raw bytes over the same socket pair.
//  2. boot: `ktstr exec -- true` (node PID 1, runtime, channel) vs QEMU booting the same kernel
//     with a busybox-only initramfs whose /init powers off at once (same accel, same topology);
//     the base image from its read-only disk, and unpacked into guest RAM (the default; KTSTR_BASE_DISK=1 boots from the disk).
//  3. monitor: guest work units (loop iterations of two spinners, one per CPU) with the host
//     monitor sampling at 10 Hz vs off, guests alternating in the same run.
// A row is one addRow() call: its value, its baseline from the same run, and how the ratio reads.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const dist = (p) => path.join(repo, 'dist', p)
const { Endpoint } = await import(dist('runtime/protocol/index.js'))
const { decodeGuestMessage } = await import(dist('runtime/protocol/guest-schema.js'))
const { CpioWriter, MemorySink } = await import(dist('src/image/cpio.js'))
const { probeKvm } = await import(dist('src/vm/accel.js'))

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (n) => n.toFixed(2)
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const jsonAt = args.indexOf('--json')
const jsonFile = path.resolve(jsonAt >= 0 ? args[jsonAt + 1] : 'bench-results.json')
const only = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--json')
/** Repetitions of a measurement (median taken): fewer with --quick. */
const reps = (full) => (quick ? Math.min(full, 3) : full)

/** @type {{ row: string, value: number | null, baseline: number | null, unit: string, ratio: number | null, note?: string }[]} */
const rows = []
/** One table row: `value` vs `baseline` (same unit, same run); `note` says what the baseline is or why the row did not run. */
function addRow(row, value, baseline, unit, note) {
  const ratio = value != null && baseline ? value / baseline : null
  rows.push({ row, value, baseline, unit, ratio, ...(note ? { note } : {}) })
}

function printTable() {
  const cells = rows.map((r) => [
    r.row,
    r.value == null ? '-' : `${fmt(r.value)} ${r.unit}`,
    r.baseline == null ? '-' : `${fmt(r.baseline)} ${r.unit}`,
    r.ratio == null ? '-' : fmt(r.ratio),
    r.note ?? '',
  ])
  const head = ['row', 'value', 'baseline', 'ratio', 'baseline is / note']
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`
  console.log([line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...cells.map(line)].join('\n'))
}

async function pair() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-'))
  const server = net.createServer()
  await new Promise((r) => server.listen(path.join(dir, 's'), r))
  const accepted = new Promise((r) => server.once('connection', r))
  const a = net.connect(path.join(dir, 's'))
  const b = await accepted
  return { a, b, close: () => (a.destroy(), b.destroy(), server.close(), fs.rmSync(dir, { recursive: true, force: true })) }
}

async function channelMiBps(framed, totalBytes, chunk) {
  const { a, b, close } = await pair()
  const payload = Buffer.alloc(chunk, 0x5a)
  let got = 0
  const t0 = performance.now()
  const done = new Promise((resolve) => {
    if (framed) {
      const host = new Endpoint(b, decodeGuestMessage)
      host.on('data', (_s, c) => {
        got += c.length
        if (got >= totalBytes) resolve()
      })
    } else
      b.on('data', (c) => {
        got += c.length
        if (got >= totalBytes) resolve()
      })
  })
  const guest = framed ? new Endpoint(a, decodeGuestMessage) : undefined
  for (let sent = 0; sent < totalBytes; sent += chunk) {
    const ok = framed ? guest.sendData(1, payload) : a.write(payload)
    if (!ok) await new Promise((r) => a.once('drain', r))
  }
  await done
  const ms = performance.now() - t0
  close()
  return totalBytes / 1048576 / (ms / 1000)
}

async function benchChannel() {
  const total = 256 * 1048576
  for (const chunk of [4096, 65536]) {
    const raw = [],
      framed = []
    for (let i = 0; i < reps(3); i++) {
      raw.push(await channelMiBps(false, total, chunk))
      framed.push(await channelMiBps(true, total, chunk))
    }
    const r = median(raw),
      f = median(framed)
    addRow(`channel ${chunk / 1024} KiB chunks`, f, r, 'MiB/s', 'raw bytes, same socket pair')
  }
}

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

function timeIt(cmd, args, env) {
  const t0 = performance.now()
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')} failed: ${r.stderr}`)
  return performance.now() - t0
}

function guestKernel() {
  return process.env.KTSTR_KERNEL || spawnSync(process.execPath, [dist('src/cli/main.js'), 'kernel', 'path'], { encoding: 'utf8' }).stdout.trim()
}

async function benchBoot() {
  const kernelDir = guestKernel()
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).stdout.toString().trim()
  if (!kernelDir || !qemu) return addRow('cold boot', null, null, 's', 'not run: needs qemu-system-x86_64 and a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  const bz = fs.statSync(kernelDir).isDirectory() ? path.join(kernelDir, 'bzImage') : kernelDir
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-'))
  const initrd = path.join(tmp, 'baseline.cpio')
  await baselineInitrd(initrd)
  const kvm = probeKvm().usable
  const accel = kvm ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', 'max']
  const base = [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-machine',
    'pc',
    ...accel,
    '-smp',
    'cpus=2,sockets=1,dies=1,cores=2,threads=1',
    '-m',
    '1024M',
    '-kernel',
    bz,
    '-initrd',
    initrd,
    '-append',
    'console=ttyS0 quiet panic=-1 reboot=k',
    '-serial',
    'null',
  ]
  const cli = dist('src/cli/main.js')
  const env = { KTSTR_KERNEL: kernelDir }
  const exec =
    (backend, extra = {}, flags = ['--cold']) =>
    () =>
      timeIt(process.execPath, [cli, 'exec', '--backend', backend, ...flags, '--', 'true'], { ...env, ...extra })
  const variants = [
    ['cold boot, qemu', exec('qemu')],
    // From the snapshot of its shape (made by the warm-up run below).
    ['warm start, qemu', exec('qemu', {}, [])],
    ['cold boot, qemu, base disk', exec('qemu', { KTSTR_BASE_DISK: '1' })],
  ]
  if (kvm) variants.push(['cold boot, kvm', exec('kvm')], ['cold boot, kvm, base disk', exec('kvm', { KTSTR_BASE_DISK: '1' })])
  for (const [, run] of variants) run() // build the cached images and the snapshot first
  const baseline = []
  const times = variants.map(() => [])
  for (let i = 0; i < reps(5); i++) {
    baseline.push(timeIt(qemu, base))
    variants.forEach(([, run], j) => times[j].push(run()))
  }
  fs.rmSync(tmp, { recursive: true, force: true })
  const b = median(baseline) / 1000
  const what = `QEMU, same kernel, busybox-only initramfs (${kvm ? 'KVM' : 'TCG'})`
  variants.forEach(([name], j) => addRow(`${name} (ktstr exec -- true)`, median(times[j]) / 1000, b, 's', what))
  if (!kvm) addRow('cold boot, kvm', null, null, 's', 'not run: no /dev/kvm')
}

// One spinner per CPU counts loop iterations for 3 s; the guest prints their sum.
const SPIN = `let n=0;const t=Date.now();while(Date.now()-t<3000)n++;console.log(n)`
const SPINNERS = `for i in 1 2; do node -e '${SPIN}' & done | awk '{s+=$1} END {print s}'`

function workUnits(cli, kernelDir, hz) {
  const r = spawnSync(process.execPath, [cli, 'exec', '--topology', '1n1l2c1t', '--monitor-hz', hz, '--', 'sh', '-c', SPINNERS], {
    env: { ...process.env, KTSTR_KERNEL: kernelDir },
    encoding: 'utf8',
    timeout: 300_000,
  })
  const n = Number(r.stdout.trim().split('\n').at(-1))
  if (r.status !== 0 || !(n > 0)) throw new Error(`ktstr exec --monitor-hz ${hz} failed (${r.status}): ${r.stderr.slice(-400)}`)
  return n
}

async function benchMonitor() {
  const kernelDir = guestKernel()
  if (!kernelDir) return addRow('guest work units, monitor 10 Hz', null, null, 'M', 'not run: needs a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  const cli = dist('src/cli/main.js')
  const on = [],
    off = []
  for (let i = 0; i < reps(3); i++) {
    off.push(workUnits(cli, kernelDir, 'off'))
    on.push(workUnits(cli, kernelDir, '10'))
  }
  const a = median(on),
    b = median(off)
  addRow('guest work units, monitor 10 Hz', a / 1e6, b / 1e6, 'M', 'monitor off (loop iterations, 2 spinners, 3 s)')
}

// `node test/bench/main.mjs monitor` runs one group of rows; no argument runs them all.
const groups = { channel: benchChannel, boot: benchBoot, monitor: benchMonitor }
if (only && !groups[only]) {
  console.error(`bench: unknown row group ${only}; known: ${Object.keys(groups).join(', ')}`)
  process.exit(2)
}
const started = new Date()
for (const [name, run] of Object.entries(groups)) if (!only || only === name) await run()
printTable()
fs.writeFileSync(jsonFile, `${JSON.stringify({ started: started.toISOString(), quick, host: { cpus: os.cpus().length, kvm: probeKvm().usable }, rows }, null, 2)}\n`)
console.log(`written: ${jsonFile}`)
