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
import type { Backend, LaunchPlan, PendingRestore } from '../backend.js'
import type { ConsoleLog } from '../console.js'
import type { VmExit, VmProcess } from '../vm-process.js'
import { type Accel, qemuArgs } from './args.js'
import type { Qmp } from './qmp.js'
import { createQemuRam, fillQemuRam, type QemuRam } from './ram-backing.js'
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

export const qemuBackend = (accel: Accel): Backend => ({
  launch: (plan, console) => launchQemu(plan, accel, console),
  prepareRestore: (plan, console) => prepareQemuRestore(plan, accel, console),
})

/** A QEMU process just started, before anything was asked of it over QMP. */
interface StartedQemu {
  console: ConsoleLog
  ram: QemuRam | undefined
  qmpSocket: string | undefined
  exited: Promise<VmExit>
  channel: Promise<Duplex>
  firstConsoleByte: Promise<void>
  startedAt: number
  kill(): void
  /** Kills QEMU and says why it could not `what`: its last stderr line, else `e`. */
  failed(what: string, e: unknown): Promise<KtstrError>
}

async function launchQemu(plan: LaunchPlan, accel: Accel, console: ConsoleLog): Promise<VmProcess> {
  if (plan.snapshot?.kind === 'restore') throw new Error('a QEMU that restores a snapshot starts through prepareRestore')
  const q = await startQemu(plan, accel, console)
  let qmp: Qmp | undefined
  if (q.qmpSocket) {
    try {
      qmp = await connectQmp(q.qmpSocket, q.exited)
      void q.exited.then(() => qmp?.close())
    } catch (e) {
      throw await q.failed('start', e)
    }
  }
  return vmProcess(plan, q, qmp, q.firstConsoleByte)
}

/**
 * QEMU for a guest of `plan`'s shape, started with `-incoming defer` and empty RAM files before the
 * caller knows which snapshot it restores (warm start works out the snapshot's key meanwhile).
 * restore(file) fills the RAM files with the snapshot's data and loads its device state.
 */
function prepareQemuRestore(shape: LaunchPlan, accel: Accel, console: ConsoleLog): PendingRestore {
  const plan: LaunchPlan = { ...shape, snapshot: { kind: 'restore' } }
  const started = startQemu(plan, accel, console)
  // QMP answers once QEMU is up: connect while the caller works out the snapshot.
  const qmp = started.then((q) => connectQmp(q.qmpSocket!, q.exited))
  void Promise.all([started, qmp]).then(
    ([q, c]) => void q.exited.then(() => c.close()),
    () => {},
  )
  let taken = false
  return {
    async restore(file) {
      if (taken) throw new Error('a pending restore restores once')
      taken = true
      const q = await started
      const t0 = performance.now()
      const filled = fillQemuRam(q.ram!, snapshotRamFiles(file, plan.topology.numaNodes))
      filled.catch(() => {}) // awaited below; not unhandled if QMP fails first
      try {
        const c = await qmp
        const up = performance.now()
        await filled
        const t1 = performance.now()
        const restored = restoreQemuSnapshot(c, file)
        await restored
        const ms = (a: number, b: number) => (b - a).toFixed(0)
        log.debug(`qemu: QMP up ${ms(q.startedAt, up)} ms after start, RAM filled ${ms(t0, t1)} ms after the snapshot was known, restored in ${ms(t1, performance.now())} ms`)
        return vmProcess(plan, q, c, restored)
      } catch (e) {
        q.kill()
        await filled.catch(() => {})
        throw await q.failed('restore the snapshot', e)
      }
    },
    abandon() {
      if (taken) return
      taken = true
      void started.then(
        (q) => q.kill(),
        () => {},
      )
    },
  }
}

async function startQemu(plan: LaunchPlan, accel: Accel, console: ConsoleLog): Promise<StartedQemu> {
  const bin = findQemu()
  // Guest RAM in files when the host reads it, and always with a snapshot (its RAM is the files; a
  // restore's files start empty and are filled before the guest runs): anonymous RAM is cheaper
  // for a big guest.
  const ram = plan.shareRam || plan.snapshot ? createQemuRam(plan.topology, plan.memoryMib) : undefined
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
  const failed = async (what: string, e: unknown) => {
    kill()
    const exit = await exited
    return new KtstrError(`QEMU could not ${what}: ${exit.stderr.split('\n').at(-1) || (e as Error).message}`)
  }
  return { console, ram, qmpSocket, exited, channel, firstConsoleByte, startedAt, kill, failed }
}

/** The running VM, once QEMU has its guest (`ready`: booting, or restored). */
function vmProcess(plan: LaunchPlan, q: StartedQemu, qmp: Qmp | undefined, ready: Promise<void>): VmProcess {
  const { ram, channel, exited } = q
  // QEMU reads the initrd and opens the RAM files while it builds the machine, before a guest CPU
  // runs: the guest's first console byte comes after both (and after the channel's chardev
  // connected). A restored guest may print nothing: its RAM is in once the restore completed.
  // Then the RAM files can go: QEMU and this process keep their mappings.
  const inputsLoaded = Promise.race([Promise.all([channel, ready]).then(() => {}), exited.then(() => {})])
  inputsLoaded.catch(() => {})
  // A template keeps its RAM files until they are saved with it (released on exit).
  if (plan.snapshot?.kind !== 'save') void ready.then(() => ram?.unlink())

  return {
    console: q.console,
    channel,
    exited,
    inputsLoaded,
    startedAt: q.startedAt,
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
    kill: q.kill,
  }
}
