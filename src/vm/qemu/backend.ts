/**
 * The qemu backend: QEMU for one guest (with KVM acceleration, or TCG). The host listens on a unix
 * socket that QEMU's channel chardev connects to at start-up, so the channel is connected before
 * the guest can write to it. Guest RAM is in files this process maps too (ram-backing.ts): the
 * VmProcess's `memory`.
 */
import { spawn } from 'node:child_process'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { KtstrError } from '../../util/errors.js'
import { log } from '../../util/log.js'
import { which } from '../../util/which.js'
import type { Backend, LaunchPlan } from '../backend.js'
import type { ConsoleLog } from '../console.js'
import type { VmExit, VmProcess } from '../vm-process.js'
import { type Accel, qemuArgs } from './args.js'
import { createQemuRam } from './ram-backing.js'

export const QEMU_BINARY = 'qemu-system-x86_64'

export function findQemu(): string {
  const bin = process.env.KTSTR_QEMU || which(QEMU_BINARY)
  if (!bin) throw new KtstrError(`${QEMU_BINARY} not found on PATH; install it: apt-get install qemu-system-x86`)
  return bin
}

/**
 * `setpriv --pdeathsig KILL` (util-linux) sets PR_SET_PDEATHSIG and execs the VMM, which keeps it:
 * the VM dies with this process whatever ends it, SIGKILL included.
 */
function withParentDeathSignal(argv: string[]): string[] {
  const setpriv = which('setpriv')
  if (setpriv) return [setpriv, '--pdeathsig', 'KILL', '--', ...argv]
  log.debug('setpriv (util-linux) not found: QEMU will not die with ktstr if ktstr is killed with SIGKILL')
  return argv
}

export const qemuBackend = (accel: Accel): Backend => ({ launch: (plan, console) => launchQemu(plan, accel, console) })

async function launchQemu(plan: LaunchPlan, accel: Accel, console: ConsoleLog): Promise<VmProcess> {
  const bin = findQemu()
  // Guest RAM in files only when the host reads it: anonymous RAM is cheaper for a big guest.
  const ram = plan.shareRam ? createQemuRam(plan.topology, plan.memoryMib) : undefined
  const server = net.createServer()
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(plan.channelSocket, () => resolve())
    })
  } catch (e) {
    ram?.release()
    throw e
  }
  const args = qemuArgs(plan, accel, ram?.files)
  log.debug('qemu', bin, args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' '))
  const startedAt = performance.now()
  // detached: QEMU gets its own process group, so a terminal's Ctrl-C reaches ktstr (which
  // forwards it to the guest's command) and not the VM itself. That also takes it out of reach
  // of a signal to our group, so the kernel kills it when we die (parent-death signal).
  const [file, ...argv] = withParentDeathSignal([bin, ...args])
  const child = spawn(file!, argv, { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  let stderr = ''
  const firstConsoleByte = new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
  child.stdout.on('data', (b: Buffer) => console.push(b))
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString('utf8')).slice(-8192)
  })

  const exited = new Promise<VmExit>((resolve) => {
    let done = false
    const finish = (code: number | null, signal: string | null) => {
      if (done) return
      done = true
      server.close()
      console.close()
      ram?.release()
      resolve({ code, signal, stderr: stderr.trim() })
    }
    child.on('error', (err) => {
      stderr += `\n${err.message}`
      finish(null, null)
    })
    child.on('close', (code, signal) => finish(code, signal))
  })

  const channel = new Promise<Duplex>((resolve, reject) => {
    server.once('connection', (sock) => {
      server.close()
      resolve(sock)
    })
    void exited.then((e) => reject(new Error(`QEMU exited before connecting the channel: ${e.stderr || `code ${e.code}`}`)))
  })
  channel.catch(() => {})
  // QEMU reads the initrd and opens the RAM files while it builds the machine, before a guest CPU
  // runs: the guest's first console byte comes after both (and after the channel's chardev
  // connected). Then the RAM files can go: QEMU and this process keep their mappings.
  const inputsLoaded = Promise.race([Promise.all([channel, firstConsoleByte]).then(() => {}), exited.then(() => {})])
  inputsLoaded.catch(() => {})
  void firstConsoleByte.then(() => ram?.unlink())

  return {
    console,
    channel,
    exited,
    inputsLoaded,
    startedAt,
    ...(ram ? { memory: ram.memory } : {}),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}
