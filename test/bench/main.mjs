#!/usr/bin/env node
// `npm run bench`: ktstr's costs as ratios against baselines measured in the same run.
//  1. channel: MiB/s through Endpoint frames (CRC32, framing) vs raw bytes over the same socket pair.
//  2. boot: `ktstr exec -- true` (node PID 1, runtime, channel) vs QEMU booting the same kernel
//     with a busybox-only initramfs whose /init powers off at once (same accel, same topology).
//  3. monitor: guest work units (loop iterations of two spinners, one per CPU) with the host
//     monitor sampling at 10 Hz vs off, guests alternating in the same run.
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
    for (let i = 0; i < 3; i++) {
      raw.push(await channelMiBps(false, total, chunk))
      framed.push(await channelMiBps(true, total, chunk))
    }
    const r = median(raw),
      f = median(framed)
    console.log(`channel ${chunk / 1024} KiB chunks: framed ${fmt(f)} MiB/s, raw ${fmt(r)} MiB/s, ratio framed/raw ${fmt(f / r)}`)
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

async function benchBoot() {
  const shared = path.resolve(repo, '..', 'shared', 'guest')
  const kernelDir = process.env.KTSTR_KERNEL || (fs.existsSync(path.join(shared, 'bzImage')) ? shared : undefined)
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).stdout.toString().trim()
  if (!kernelDir || !qemu) return console.log('boot: skipped (needs qemu-system-x86_64 and KTSTR_KERNEL)')
  const bz = fs.statSync(kernelDir).isDirectory() ? path.join(kernelDir, 'bzImage') : kernelDir
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-'))
  const initrd = path.join(tmp, 'baseline.cpio')
  await baselineInitrd(initrd)
  const accel = probeKvm().usable ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', 'max']
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
  timeIt(process.execPath, [cli, 'exec', '--', 'true'], { KTSTR_KERNEL: kernelDir }) // warm the image cache
  const ours = [],
    baseline = []
  for (let i = 0; i < 3; i++) {
    baseline.push(timeIt(qemu, base))
    ours.push(timeIt(process.execPath, [cli, 'exec', '--', 'true'], { KTSTR_KERNEL: kernelDir }))
  }
  fs.rmSync(tmp, { recursive: true, force: true })
  const o = median(ours),
    b = median(baseline)
  console.log(`boot to a command and back: ktstr exec ${fmt(o / 1000)} s, bare kernel+busybox ${fmt(b / 1000)} s, ratio ${fmt(o / b)}`)
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
  const kernelDir = process.env.KTSTR_KERNEL || spawnSync(process.execPath, [dist('src/cli/main.js'), 'kernel', 'path'], { encoding: 'utf8' }).stdout.trim()
  if (!kernelDir) return console.log('monitor: skipped (needs a guest kernel: KTSTR_KERNEL or ktstr kernel build)')
  const cli = dist('src/cli/main.js')
  const on = [],
    off = []
  for (let i = 0; i < 3; i++) {
    off.push(workUnits(cli, kernelDir, 'off'))
    on.push(workUnits(cli, kernelDir, '10'))
  }
  const a = median(on),
    b = median(off)
  console.log(`guest work units, monitor 10 Hz vs off: ${(a / 1e6).toFixed(1)}M vs ${(b / 1e6).toFixed(1)}M loop iterations, ratio ${fmt(a / b)}`)
}

// `node test/bench/main.mjs monitor` runs one row; no argument runs them all.
const only = process.argv[2]
if (!only || only === 'channel') await benchChannel()
if (!only || only === 'boot') await benchBoot()
if (!only || only === 'monitor') await benchMonitor()
