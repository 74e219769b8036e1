/**
 * Boot one guest for a request: resolve the kernel, scheduler and topology, build the initrd,
 * start the backend (./backend.ts), connect the channel and wait for the guest init's hello.
 */
import fs from 'node:fs'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { ENV_INSPECTOR, RUN_SPEC_PATH, type RunSpec, type TemplateSpec } from '../../runtime/protocol/index.js'
import { resolveTopology } from '../../runtime/protocol/presets.js'
import { cpuCount } from '../../runtime/protocol/topology.js'
import { baseImage, findBusybox, imageDir } from '../image/base.js'
import { initramfsLimit } from '../image/budget.js'
import { composeDiskInitrd, diskBootBlocker, virtioDiskName } from '../image/disk-boot.js'
import { isElf } from '../image/elf.js'
import { composeInitrd } from '../image/initrd.js'
import { runArchive } from '../image/run-archive.js'
import { strippedCopy } from '../image/stripped.js'
import { resolveKernel } from '../kernel/resolve.js'
import { type ResolvedScheduler, resolveScheduler } from '../kernel/schedulers.js'
import { KtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { packageRoot } from '../util/paths.js'
import { probeKvm } from './accel.js'
import { type Backend, kernelCmdline, type LaunchPlan, type PendingRestore } from './backend.js'
import { ConsoleLog } from './console.js'
import { DEFAULT_MEMORY_MIB, DEFAULT_MONITOR_HZ, DEFAULT_STALL_MS, DEFAULT_TIMEOUT_S, DEFAULT_TOPOLOGY, SCHEDULER_ATTACH_TIMEOUT_MS } from './defaults.js'
import { checkDisk } from './disk.js'
import { kvmBackend, kvmSnapshotIdentity } from './kvm/backend.js'
import { findQemu, qemuBackend } from './qemu/backend.js'
import { createRunDir, removeRunDir, sweepRunDirsOnce } from './run-dir.js'
import type { GuestSession } from './session.js'
import { liveGuests, startSession } from './session-runner.js'
import { checkRequest } from './spec/parse.js'
import type { BackendName, VmRequest } from './spec/request.js'
import type { VmProcess } from './vm-process.js'
import { snapshotKey } from './warm/key.js'
import { claimStandby, hasStandby, keepStandby, wantStandby } from './warm/standby.js'
import { warmLaunch } from './warm/warm-start.js'

/** Above this, a run's own files go in the initramfs of a cold boot rather than over the channel. */
const WARM_ARCHIVE_MAX = 32 << 20

export interface BootOptions {
  /** Called with each kernel console line as it arrives (e.g. KTSTR_LOG=debug echo). */
  onConsoleLine?: (line: string) => void
  /**
   * Watch mode: once this guest ends, restore another of its shape ahead of the next run
   * (warm/standby.ts); a run of that shape then claims it.
   */
  standby?: boolean
}

export async function bootGuest(request: VmRequest, opts: BootOptions = {}): Promise<GuestSession> {
  const t0 = performance.now()
  sweepRunDirsOnce()
  const req = checkRequest(request)
  const topology = resolveTopology(req.topology ?? DEFAULT_TOPOLOGY)
  const memoryMib = req.memoryMib ?? DEFAULT_MEMORY_MIB
  const timeoutS = req.timeoutS ?? DEFAULT_TIMEOUT_S
  const { backend, name: backendName } = chooseBackend(req.backend ?? 'auto')
  for (const d of req.disks ?? []) checkDisk(d)
  for (const p of req.include ?? []) if (!fs.existsSync(p)) throw new KtstrError(`include ${p}: no such file or directory on the host`)
  const kernel = await resolveKernel(req.kernel)
  const scheduler = req.scheduler ? resolveScheduler(kernel, req.scheduler) : undefined
  if (req.nestedKvm && kernel.config.get('CONFIG_KVM_AMD') !== 'y') {
    throw new KtstrError(`kernel ${kernel.bzImage} has no CONFIG_KVM_AMD=y, so it cannot run KVM nested; build one with \`ktstr kernel build\``)
  }
  const initScript = path.join(packageRoot(), 'dist', 'runtime', 'init', 'main.js')
  if (!fs.existsSync(initScript)) throw new KtstrError(`${initScript} is missing; build ktstr first: npm run build`)

  const runSpec: RunSpec = {
    mode: req.mode,
    env: req.env ?? {},
    cwd: req.cwd ?? process.cwd(),
    ...(scheduler ? { scheduler: schedulerSpec(scheduler, req.schedArgs ?? []) } : {}),
    attachTimeoutMs: SCHEDULER_ATTACH_TIMEOUT_MS,
  }
  // A Vitest run's worker modules are loaded by the template, with this run's environment.
  const template: TemplateSpec | undefined =
    runSpec.mode.kind === 'vitest' && !runSpec.env[ENV_INSPECTOR] ? { vitest: { workerEntry: runSpec.mode.workerEntry, env: runSpec.env, cwd: runSpec.cwd } } : undefined
  const standbyShape = JSON.stringify({
    backend: backendName,
    kernel: kernel.bzImage,
    topology,
    memoryMib,
    nestedKvm: req.nestedKvm === true,
    shareRam: req.monitorHz !== 'off',
    extra: req.extraImagePaths ?? [],
    template,
  })
  const tmp = createRunDir()
  let pending: PendingRestore | undefined
  try {
    const wantDisk = diskBoot()
    const initrd = path.join(tmp, 'initrd.cpio')
    const disks = req.disks ?? []
    const newConsole = () => new ConsoleLog(400, process.env.KTSTR_CONSOLE_LOG, opts.onConsoleLine)
    // A VMM waiting for its snapshot, its socket in `dir`: a cold boot after it (the run turned out
    // cold) must not race its teardown.
    const prepareRestore = (dir: string) => {
      const noInitrd = path.join(dir, 'no-initrd')
      fs.writeFileSync(noInitrd, '')
      return backend.prepareRestore!({ ...shape, initrd: noInitrd, channelSocket: path.join(dir, 'restore.sock') }, newConsole())
    }
    const shape: LaunchPlan = {
      kernel: kernel.bzImage,
      initrd,
      topology,
      memoryMib,
      disks,
      channelSocket: path.join(tmp, 'channel.sock'),
      nestedKvm: req.nestedKvm === true,
      shareRam: req.monitorHz !== 'off',
    }
    // A warm start's VMM starts now, waiting for its snapshot: its start overlaps the image and
    // the snapshot's key, worked out below. (A base image on a disk or too big a run archive can still
    // make the run cold.)
    // Unless a guest of this shape was restored ahead of this run (watch mode).
    const canWarm = !coldReason(req, false, 0) && backend.prepareRestore !== undefined
    const specJson = JSON.stringify(runSpec)
    const fromStandby = canWarm && hasStandby(standbyShape, specJson)
    if (canWarm && !fromStandby) pending = prepareRestore(tmp)
    const [base, schedulerCopy] = await Promise.all([
      baseImage({ extraPaths: req.extraImagePaths ?? [], disk: wantDisk }),
      // Without its debug sections: half the bytes for the guest to take in.
      scheduler && isElf(scheduler.path) ? strippedCopy('scheduler', scheduler.path, imageDir()) : undefined,
    ])
    const onDisk = base.format === 'ext4'
    const run = runArchive({
      data: [{ guestPath: RUN_SPEC_PATH, content: specJson }],
      hostPaths: [...(scheduler ? [schedulerCopy ? { path: scheduler.path, source: schedulerCopy } : scheduler.path] : []), ...(req.include ?? [])],
      omit: base.files,
      // From a disk, only this run's files (and busybox) take guest RAM.
      limit: initramfsLimit(memoryMib, onDisk ? { archive: 4 << 20, unpacked: 4 << 20 } : { archive: base.bytes, unpacked: base.unpacked }),
    })
    const plan: LaunchPlan = { ...shape, ...(onDisk ? { baseDisk: base.path } : {}) }
    const cold = coldReason(req, onDisk, run.cost().archive) ?? (canWarm ? undefined : 'this backend cannot restore a snapshot')
    if (cold) log.debug(`warm start off: ${cold}`)
    let vm: VmProcess | undefined
    let runArchiveBytes: Buffer | undefined
    let primedArchive: Buffer | undefined
    let imageMs = 0
    let warm: { key: string; restore: (dropped: AbortSignal) => Promise<VmProcess | undefined> } | undefined
    if (!cold) {
      // This run's own files, sent over the channel to the restored guest.
      const archive = path.join(tmp, 'run.cpio')
      await run.writeCpio(archive)
      // gzip'd: the channel takes ~3 MiB/s host → guest under TCG, and a scheduler with its libraries
      // shrinks to ~45 % (level 1: ~15 ms here; the guest unpacks it in less than the bytes saved take).
      runArchiveBytes = gzipSync(fs.readFileSync(archive), { level: 1 })
      imageMs = performance.now() - t0
      const key = snapshotKey({
        ...plan,
        ...(template ? { template } : {}),
        kernel: kernel.bzImage,
        baseImageKey: base.key,
        backend: backendName,
        ...(backendName === 'kvm' ? kvmSnapshotIdentity() : { vmm: findQemu() }),
        cmdline: kernelCmdline(),
        nestedKvm: plan.nestedKvm,
      })
      const launch = (p: PendingRestore, signal?: AbortSignal) =>
        warmLaunch({ backend, format: backendName === 'kvm' ? 'kvm' : 'qemu', key, plan, base, pending: p, ...(template ? { template } : {}), ...(signal ? { signal } : {}) })
      warm = {
        key,
        restore: async (dropped) => {
          // A run folder of its own, for as long as its VMM needs it (as this run's, below).
          const dir = createRunDir()
          const restored = await withPending(prepareRestore(dir), (p) => launch(p, dropped), dropped).catch((e: unknown) => {
            removeRunDir(dir)
            throw e
          })
          if (restored) void (restored.inputsLoaded ?? Promise.resolve()).then(() => removeRunDir(dir))
          else removeRunDir(dir)
          return restored
        },
      }
      if (fromStandby) {
        const claim = await claimStandby(standbyShape, specJson, key, runArchiveBytes)
        if (claim) {
          ;({ vm, primedArchive } = claim)
          log.debug('warm start: a guest restored ahead of this run (watch mode)')
        }
      }
      if (!vm) vm = await launch((pending ??= prepareRestore(tmp)))
      if (!vm) runArchiveBytes = undefined
    }
    pending?.abandon() // unused (a cold run), or used: then a no-op
    if (!vm) {
      // The base disk comes after the user's, so theirs keep /dev/vda, /dev/vdb, …
      if (onDisk) await composeDiskInitrd(base, run, { device: virtioDiskName(disks.length), busybox: findBusybox(), node: process.execPath, writable: [runSpec.cwd] }, initrd)
      else await composeInitrd(base, run, initrd)
      imageMs = performance.now() - t0
      vm = await backend.launch(plan, newConsole())
    }
    log.debug(`image ready in ${imageMs.toFixed(0)} ms (base ${base.built ? 'built' : 'cached'}: ${base.path})`)
    // The run folder is needed only until the VMM has read the initrd and connected the channel.
    void (vm.inputsLoaded ?? Promise.resolve()).then(() => removeRunDir(tmp))
    const monitor = { kernel, cpus: cpuCount(topology), hz: req.monitorHz ?? DEFAULT_MONITOR_HZ, stallMs: req.stallMs ?? DEFAULT_STALL_MS }
    const session = await startSession(vm, {
      t0,
      imageMs,
      timeoutS,
      tmpDir: tmp,
      monitor,
      ...(runArchiveBytes ? { runArchive: runArchiveBytes } : {}),
      ...(primedArchive ? { primedArchive } : {}),
    })
    removeRunDir(tmp) // the guest's init said hello: its initrd was loaded long ago
    if (opts.standby && warm && runArchiveBytes) {
      wantStandby()
      const { key, restore } = warm
      const primed = { archive: runArchiveBytes, spec: specJson, attachesAhead: runSpec.scheduler !== undefined }
      // Not while another guest runs: its restore and priming would take that guest's CPU.
      void session.done.then(() => {
        if (liveGuests() === 0) keepStandby(standbyShape, key, primed, restore)
      })
    }
    return session
  } catch (e) {
    pending?.abandon()
    removeRunDir(tmp)
    throw e
  }
}

/** `launch` with `pending`, which is abandoned if it restored nothing, or once `dropped`. */
async function withPending(pending: PendingRestore, launch: (p: PendingRestore) => Promise<VmProcess | undefined>, dropped: AbortSignal): Promise<VmProcess | undefined> {
  dropped.addEventListener('abort', () => pending.abandon(), { once: true })
  try {
    const vm = await launch(pending)
    if (!vm) pending.abandon()
    return vm
  } catch (e) {
    pending.abandon()
    throw e
  }
}

/**
 * Whether to boot from the base image on a read-only disk: opt-in (KTSTR_BASE_DISK=1) while it is
 * not yet faster than unpacking the image into guest RAM under TCG and not yet checked on every path
 * (the kvm backend, a pool run with the inspector); the default unpacks it into RAM.
 */
function diskBoot(): boolean {
  if (process.env.KTSTR_BASE_DISK !== '1') return false
  const blocker = diskBootBlocker(findBusybox())
  if (blocker) log.debug(`base image unpacked into guest RAM: ${blocker}`)
  return !blocker
}

/** Which VMM runs the guest: our own on usable KVM, else QEMU (with KVM acceleration when it can). */
function chooseBackend(name: BackendName): { backend: Backend; name: string } {
  const kvm = probeKvm()
  if (name === 'kvm' && !kvm.usable) throw new KtstrError(`the kvm backend needs a usable /dev/kvm: ${kvm.reason}; use --backend qemu`)
  if (name !== 'qemu' && kvm.usable) return { backend: kvmBackend, name: 'kvm' }
  if (!kvm.usable) log.debug(`KVM not usable (${kvm.reason}); QEMU runs with TCG`)
  const accel = kvm.usable ? 'kvm' : 'tcg'
  return { backend: qemuBackend(accel), name: `qemu-${accel}` }
}

/** Why this run boots cold rather than from a snapshot; undefined when it can start warm. */
function coldReason(req: VmRequest, onDisk: boolean, runBytes: number): string | undefined {
  if (req.warm === false) return 'asked for a cold boot (--cold, warm=false)'
  if (process.env.KTSTR_WARM === '0') return 'KTSTR_WARM=0'
  if (req.disks?.length) return 'the run has disks, which a snapshot cannot attach yet'
  if (onDisk) return 'the base image is on a disk (KTSTR_BASE_DISK=1)'
  // The kernel unpacks a big initramfs faster than the channel carries it, and without a copy in guest RAM.
  if (runBytes > WARM_ARCHIVE_MAX) return `the run's own files take ${(runBytes / 2 ** 20).toFixed(0)} MiB, more than the ${WARM_ARCHIVE_MAX >> 20} MiB sent to a restored guest`
  return undefined
}

function schedulerSpec(s: ResolvedScheduler, args: string[]) {
  return { name: s.name, path: s.path, args, ...(s.opsName ? { opsName: s.opsName } : {}) }
}
