/**
 * The qemu backend: QEMU for one guest (with KVM acceleration, or TCG). The host listens on a unix
 * socket that QEMU's channel chardev connects to at start-up, so the channel is connected before
 * the guest can write to it. Guest RAM is in files this process maps too (ram-backing.ts): the
 * VmProcess's `memory`.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { Duplex } from 'node:stream'
import { KtstrError } from '../../util/errors.js'
import { log } from '../../util/log.js'
import { copySparse } from '../../util/sparse-copy.js'
import { which } from '../../util/which.js'
import type { Backend, LaunchPlan } from '../backend.js'
import type { ConsoleLog } from '../console.js'
import type { VmExit, VmProcess } from '../vm-process.js'
import { type Accel, qemuArgs } from './args.js'
import type { Qmp } from './qmp.js'
import { createQemuRam, restoreQemuRam } from './ram-backing.js'
import { connectQmp, restoreQemuSnapshot, saveQemuSnapshot, snapshotRamFiles } from './snapshot.js'

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
  // Guest RAM in files when the host reads it, and always with a snapshot (its RAM is the files):
  // anonymous RAM is cheaper for a big guest.
  // A restore's RAM fills while QEMU starts (it maps the files, and touches them only once the guest runs).
  const restoring = plan.snapshot?.kind === 'restore' ? restoreQemuRam(plan.topology, plan.memoryMib, snapshotRamFiles(plan.snapshot.file, plan.topology.numaNodes)) : undefined
  const ram = restoring ? restoring.ram : plan.shareRam || plan.snapshot ? createQemuRam(plan.topology, plan.memoryMib) : undefined
  const server = net.createServer()
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(plan.channelSocket, () => resolve())
    })
  } catch (e) {
    await restoring?.filled.catch(() => {})
    ram?.release()
    throw e
  }
  const qmpSocket = plan.snapshot ? path.join(path.dirname(plan.channelSocket), 'qmp.sock') : undefined
  const args = qemuArgs(plan, accel, ram?.files, qmpSocket)
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
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  let qmp: Qmp | undefined
  let restored: Promise<void> | undefined
  if (qmpSocket) {
    try {
      qmp = await connectQmp(qmpSocket, exited)
      void exited.then(() => qmp?.close())
      if (plan.snapshot?.kind === 'restore') {
        const up = performance.now()
        await restoring?.filled
        const filled = performance.now()
        restored = restoreQemuSnapshot(qmp, plan.snapshot.file)
        await restored
        const ms = (a: number, b: number) => (b - a).toFixed(0)
        log.debug(`qemu: QMP up ${ms(startedAt, up)} ms after start, RAM filled ${ms(up, filled)} ms later, snapshot restored in ${ms(filled, performance.now())} ms`)
      }
    } catch (e) {
      kill()
      await restoring?.filled.catch(() => {})
      const exit = await exited
      throw new KtstrError(`QEMU could not ${plan.snapshot?.kind === 'restore' ? 'restore the snapshot' : 'start'}: ${exit.stderr.split('\n').at(-1) || (e as Error).message}`)
    }
  }
  // QEMU reads the initrd and opens the RAM files while it builds the machine, before a guest CPU
  // runs: the guest's first console byte comes after both (and after the channel's chardev
  // connected). A restored guest may print nothing: its RAM is in once the restore completed.
  // Then the RAM files can go: QEMU and this process keep their mappings.
  const ready = restored ?? firstConsoleByte
  const inputsLoaded = Promise.race([Promise.all([channel, ready]).then(() => {}), exited.then(() => {})])
  inputsLoaded.catch(() => {})
  // A template keeps its RAM files until they are saved with it (released on exit).
  if (plan.snapshot?.kind !== 'save') void ready.then(() => ram?.unlink())

  return {
    console,
    channel,
    exited,
    inputsLoaded,
    startedAt,
    ...(ram ? { memory: ram.memory } : {}),
    ...(qmp && ram && plan.snapshot?.kind === 'save'
      ? {
          saveSnapshot: async (file: string) => {
            await saveQemuSnapshot(qmp, file)
            const parts = snapshotRamFiles(file, ram.files.length)
            try {
              await Promise.all(ram.files.map((f, n) => copySparse(f, parts[n]!)))
            } catch (e) {
              for (const p of parts) fs.rmSync(p, { force: true }) // e.g. the disk filled up
              throw e
            }
            return parts
          },
        }
      : {}),
    kill,
  }
}
