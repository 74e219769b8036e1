// Channel rows.
//  - Endpoint frames (CRC32, framing) vs raw bytes over the same unix socket pair, in process.
//  - Through a real guest: MiB/s of a command's stdout (guest to host), of its stdin (host to
//    guest), and the round trip of a line the guest's `cat` echoes (host to guest to host), vs a
//    raw unix socket pair.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { cli, dist, guestKernel, median, reps, timeIt } from './options.mjs'
import { addRow, notRun } from './table.mjs'

const { Endpoint } = await import(dist('runtime/protocol/index.js'))
const { decodeGuestMessage } = await import(dist('runtime/protocol/guest-schema.js'))

async function pair() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-'))
  const server = net.createServer()
  await new Promise((r) => server.listen(path.join(dir, 's'), r))
  const accepted = new Promise((r) => server.once('connection', r))
  const a = net.connect(path.join(dir, 's'))
  const b = await accepted
  fs.rmSync(dir, { recursive: true, force: true })
  return { a, b, close: () => (a.destroy(), b.destroy(), server.close()) }
}

async function socketMiBps(framed, totalBytes, chunk) {
  const { a, b, close } = await pair()
  const payload = Buffer.alloc(chunk, 0x5a)
  let got = 0
  const t0 = performance.now()
  const done = new Promise((resolve) => {
    const count = (c) => {
      got += c.length
      if (got >= totalBytes) resolve()
    }
    if (framed) new Endpoint(b, decodeGuestMessage).on('data', (_s, c) => count(c))
    else b.on('data', count)
  })
  const guest = framed ? new Endpoint(a, decodeGuestMessage) : undefined
  for (let sent = 0; sent < totalBytes; sent += chunk) {
    const ok = framed ? guest.sendData(1, payload) : a.write(payload)
    if (!ok) await new Promise((r) => a.once('drain', r))
  }
  await done
  const ms = performance.now() - t0
  close()
  return totalBytes / 2 ** 20 / (ms / 1000)
}

/** Median µs of `n` one-line round trips: write a line to `w`, wait for it back on `r`. */
async function roundTripUs(w, r, n) {
  const times = []
  for (let i = 0; i < n; i++) {
    const back = new Promise((resolve) => r.once('data', resolve))
    const t0 = performance.now()
    w.write('ping\n')
    await back
    times.push((performance.now() - t0) * 1000)
  }
  return median(times)
}

async function socketRoundTripUs(n) {
  const { a, b, close } = await pair()
  b.on('data', (c) => b.write(c)) // the echo
  const us = await roundTripUs(a, a, n)
  close()
  return us
}

/** Round trips through `ktstr exec -- cat`: the host's stdin to the guest's cat, its echo back to the host's stdout. */
async function guestRoundTripUs(kernel, n) {
  const child = spawn(process.execPath, [cli, 'exec', '--', 'cat'], { env: { ...process.env, KTSTR_KERNEL: kernel }, stdio: ['pipe', 'pipe', 'inherit'] })
  await roundTripUs(child.stdin, child.stdout, 1) // the first waits for the boot
  const us = await roundTripUs(child.stdin, child.stdout, n)
  child.stdin.end()
  const code = await new Promise((r) => child.on('close', r))
  if (code !== 0) throw new Error(`ktstr exec -- cat exited ${code}`)
  return us
}

export async function benchChannel() {
  const total = 256 * 2 ** 20
  for (const chunk of [4096, 65536]) {
    const raw = [],
      framed = []
    for (let i = 0; i < reps(3); i++) {
      raw.push(await socketMiBps(false, total, chunk))
      framed.push(await socketMiBps(true, total, chunk))
    }
    addRow(`channel frames, ${chunk / 1024} KiB chunks`, median(framed), median(raw), 'MiB/s', 'raw bytes, same socket pair')
  }
  const kernel = guestKernel()
  if (!kernel) {
    notRun('channel through a guest, guest to host', 'MiB/s', 'needs a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
    return notRun('channel through a guest, round trip', 'µs', 'needs a guest kernel')
  }
  // Guest to host: a command's stdout of `mib` MiB, less the same run printing nothing (both warm).
  const mib = 64
  const exec = (cmd) => () => timeIt(process.execPath, [cli, 'exec', '--', 'sh', '-c', cmd], { KTSTR_KERNEL: kernel })
  const big = exec(`dd if=/dev/zero bs=65536 count=${mib * 16} 2>/dev/null`)
  const none = exec('true')
  none() // makes the snapshot of this shape if it is missing
  const bigMs = [],
    noneMs = []
  for (let i = 0; i < reps(3); i++) {
    noneMs.push(none())
    bigMs.push(big())
  }
  const guestMiBps = mib / ((median(bigMs) - median(noneMs)) / 1000)
  const rawMiBps = await socketMiBps(false, total, 65536)
  addRow(`channel through a guest, ${mib} MiB guest to host`, guestMiBps, rawMiBps, 'MiB/s', 'raw unix socket pair, 64 KiB writes')
  // Host to guest: a command reading `inMib` MiB of stdin, less the same run with empty stdin.
  const inMib = 16
  const input = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-')), 'stdin')
  fs.writeFileSync(input, Buffer.alloc(inMib * 2 ** 20, 0x5a))
  const reading = (file) => () => {
    const fd = fs.openSync(file, 'r')
    const t0 = performance.now()
    const r = spawnSync(process.execPath, [cli, 'exec', '--', 'wc', '-c'], { env: { ...process.env, KTSTR_KERNEL: kernel }, stdio: [fd, 'pipe', 'pipe'], timeout: 300_000 })
    fs.closeSync(fd)
    if (r.status !== 0 || Number(String(r.stdout).trim()) !== fs.statSync(file).size)
      throw new Error(`ktstr exec -- wc -c: ${r.status ?? r.signal} ${String(r.stdout).trim()} ${String(r.stderr).slice(-300)}`)
    return performance.now() - t0
  }
  fs.writeFileSync(`${input}.empty`, '')
  const inMs = [],
    emptyMs = []
  for (let i = 0; i < reps(3); i++) {
    emptyMs.push(reading(`${input}.empty`)())
    inMs.push(reading(input)())
  }
  fs.rmSync(path.dirname(input), { recursive: true, force: true })
  addRow(`channel through a guest, ${inMib} MiB host to guest`, inMib / ((median(inMs) - median(emptyMs)) / 1000), rawMiBps, 'MiB/s', 'raw unix socket pair, 64 KiB writes')
  const n = 50
  addRow('channel through a guest, round trip', await guestRoundTripUs(kernel, n), await socketRoundTripUs(n), 'µs', `raw unix socket pair echo (median of ${n} lines)`)
}
