// A stand-in for the guest init (runtime/init/main.ts) in a child process (test/helpers/fake-vm.ts
// childVm): the channel is a unix socket instead of a virtio port, and "the kernel console" is this
// process's stderr. It runs the compiled guest worker exactly as the init does for mode vitest.
// Plain JS: node runs it directly.

import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import v8 from 'node:v8'
import { decodeHostMessage, Endpoint } from '../../dist/runtime/protocol/index.js'

const [socketPath, specPath] = process.argv.slice(2)
const exit = process.exit.bind(process) // Vitest makes process.exit throw while tests run; the init uses reboot(2)
const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'))
const consoleLine = (s) => fs.writeSync(2, `${s}\n`) // straight to fd 2, past any stdio capture

consoleLine('[    0.000000] Linux version 6.12.0-fake (ktstr relay test)')
consoleLine(`[    0.400000] fake init: topology ${spec.topology ?? 'default'}, ${spec.memoryMib ?? 'default'} MiB`)
if (spec.scheduler === 'scx_noboot') {
  // A kernel that never gets as far as the init: the VM dies before the channel is connected.
  consoleLine('[    0.900000] Run /init as init process')
  consoleLine('[    0.950000] Kernel panic - not syncing: No working init found.')
  exit(1)
}

const socket = net.connect(socketPath)
await once(socket, 'connect')
const endpoint = new Endpoint(socket, decodeHostMessage)
const send = (msg) => endpoint.sendControl(msg)

// As the init does: the host's shutdown (or the host going away) powers the guest off at once.
let farewell
const shutdown = new Promise((r) => (farewell = r))
const goodbye = () => {
  farewell()
  void powerOff(0)
}
endpoint.on('control', (msg) => {
  if (msg.kind === 'shutdown') goodbye()
})
endpoint.on('close', goodbye)
send({ kind: 'hello', uptimeMs: 1, nodeVersion: process.version })

// The init treats an uncaught error as fatal to the guest; Vitest must see test errors first.
const fatal = (err) => {
  send({ kind: 'fatal', message: `uncaught: ${err?.message ?? err}` })
  void powerOff(1)
}
process.on('uncaughtException', fatal)
process.on('unhandledRejection', fatal)

let poweringOff = false
async function powerOff(code) {
  if (poweringOff) return new Promise(() => {})
  poweringOff = true
  await endpoint.flush()
  await Promise.race([shutdown, new Promise((r) => setTimeout(r, 3000))])
  consoleLine('[   9.000000] reboot: Power down')
  exit(code)
}

const scheduler = spec.scheduler
if (scheduler === 'scx_broken') {
  consoleLine('[    1.200000] sched_ext: scx_broken: ops.init() failed (-22)')
  send({
    kind: 'scheduler-failed',
    scheduler,
    message: 'scx_broken exited before attaching',
    exit: { code: 1, signal: null, output: 'scx_broken: failed to attach: Invalid argument\n' },
  })
  await powerOff(0)
}
if (scheduler) consoleLine(`[    1.100000] sched_ext: BPF scheduler "${scheduler.replace(/^scx_/, '')}" enabled`)

// Hooks the fixture tests call to make the guest misbehave.
globalThis.__fakeGuest = {
  panic(message) {
    consoleLine('[    5.000000] Call Trace:')
    consoleLine(`[    5.000001] Kernel panic - not syncing: ${message}`)
    process.kill(process.pid, 'SIGKILL')
  },
  /** A Vitest frame carrying any value: what a broken or hostile guest could send. */
  sendVitest(value) {
    endpoint.sendVitest(v8.serialize(value))
  },
  schedulerExit(reason) {
    consoleLine(`[    5.000000] sched_ext: BPF scheduler "${scheduler.replace(/^scx_/, '')}" disabled (${reason})`)
    send({ kind: 'scheduler-exited', scheduler, exit: { code: 1, signal: null, output: `${scheduler}: exiting\n`, reason } })
  },
}

// The guest cannot write the host's tree: a snapshot written in the guest would be lost.
const root = spec.cwd + path.sep
const readOnly = (p) => typeof p === 'string' && path.resolve(p).startsWith(root)
const refuse = (p) => Object.assign(new Error(`EROFS: fake guest, read-only host tree: ${p}`), { code: 'EROFS' })
for (const [obj, name] of [
  [fs.promises, 'writeFile'],
  [fs.promises, 'mkdir'],
  [fs.promises, 'unlink'],
  [fs, 'writeFileSync'],
  [fs, 'mkdirSync'],
]) {
  const orig = obj[name]
  obj[name] = function (p, ...rest) {
    if (readOnly(p)) {
      if (name.endsWith('Sync')) throw refuse(p)
      return Promise.reject(refuse(p))
    }
    return orig.call(this, p, ...rest)
  }
}

process.env.FAKE_GUEST = '1'
const worker = await import(spec.mode.workerEntry)
await worker.runVitestWorker(endpoint, { env: spec.env, cwd: spec.cwd })
send({ kind: 'exit', code: 0, signal: null, uptimeMs: 2 })
await powerOff(0)
