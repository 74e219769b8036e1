/**
 * Starting the monitor on a booted guest: the kernel's BTF and the monitor's field layout (once,
 * while the guest boots), then a scan of guest RAM for the per-CPU areas once its init is up.
 * Anything missing turns the monitor off with one line saying why; the run goes on without it.
 */
import type { KernelBtfSource } from '../kernel/btf-cache.js'
import { log } from '../util/log.js'
import type { GuestMemory } from '../vm/memory/guest-memory.js'
import { type Btf, BtfError } from './btf/index.js'
import { loadKernelBtf } from './btf/kernel.js'
import { type Layout, resolveLayout } from './layout.js'
import { modelCacheFile, readCachedModel, writeCachedModel } from './model-cache.js'
import { Monitor, type MonitorOptions } from './monitor.js'
import { GuestKernelView } from './open-view.js'
import { readPercpuHints, writePercpuHint } from './percpu-hint.js'
import { checkPercpuAreas, type PercpuAreas, type PercpuOffsets, percpuScanOffsets, scanPercpuAreasYielding } from './percpu-scan.js'

export type MonitorStatus =
  | { readonly on: true; readonly monitor: Monitor /** ms the per-CPU scan of guest RAM took. */; readonly scanMs: number }
  | { readonly on: false /** One line: why there is no monitor. */; readonly reason: string }

/** `btf` parses the kernel's BTF on first use (sampling needs only `layout` and `scan`). */
export type KernelModel = { ok: true; btf: () => Btf; layout: Layout; scan: PercpuOffsets } | { ok: false; reason: string }

/** Models by kernel content: a process that runs many guests (Vitest's pool) parses a BTF once. */
const models = new Map<string, KernelModel & { ok: true }>()

/**
 * The kernel's BTF and what the monitor needs of it; `ok: false` with one line when it cannot.
 * The layout comes from the on-disk model cache when it has this kernel (./model-cache.ts): the
 * BTF is then parsed only if `btf()` is called.
 */
export function kernelModel(kernel: KernelBtfSource): KernelModel {
  const file = modelCacheFile(kernel)
  const known = file ? models.get(file) : undefined
  if (known) return known
  const cached = file ? readCachedModel(file) : undefined
  const model = cached ? { ok: true as const, btf: lazyBtf(kernel), ...cached } : parseModel(kernel, file)
  if (model.ok && file) models.set(file, model)
  return model
}

/** The model from the kernel's BTF, kept in `file` for the next process. */
function parseModel(kernel: KernelBtfSource, file: string | undefined): KernelModel {
  const loaded = loadKernelBtf(kernel)
  if (!loaded.ok) return loaded
  const layout = resolveLayout(loaded.btf)
  if (!layout.ok) return layout
  try {
    const model = { layout: layout.layout, scan: percpuScanOffsets(loaded.btf) }
    if (file) writeCachedModel(file, model)
    return { ok: true, btf: () => loaded.btf, ...model }
  } catch (e) {
    if (e instanceof BtfError) return { ok: false, reason: `the guest kernel's BTF does not fit the monitor: ${e.message}` }
    throw e
  }
}

/**
 * The kernel's BTF, parsed on the first call; a BtfError naming why when it cannot be (callers read
 * best-effort). Either outcome is kept: a failed extraction can take seconds, not to be repeated.
 */
function lazyBtf(kernel: KernelBtfSource): () => Btf {
  let loaded: ReturnType<typeof loadKernelBtf> | undefined
  return () => {
    loaded ??= loadKernelBtf(kernel)
    if (!loaded.ok) throw new BtfError(loaded.reason)
    return loaded.btf
  }
}

export interface OpenOptions extends MonitorOptions {
  /** CPUs the guest has (the scan stops once it found them all). */
  cpus: number
  /** How long to keep looking for the per-CPU areas (default 3000 ms). */
  retryMs?: number
  /** The kernel, to keep where its per-CPU areas were (percpu-hint.ts); without it every start scans. */
  kernel?: KernelBtfSource
}

const RETRY_EVERY_MS = 200

/** Find the per-CPU areas (retrying briefly while the kernel sets up) and start a Monitor. */
export async function openMonitor(mem: GuestMemory | undefined, model: KernelModel, opts: OpenOptions): Promise<MonitorStatus> {
  if (!mem) return { on: false, reason: 'this backend does not share guest RAM with the host' }
  if (!model.ok) return { on: false, reason: model.reason }
  const deadline = performance.now() + (opts.retryMs ?? 3000)
  // Never in the caller's turn: the kvm backend's caller is the console's queue handler (the guest's
  // hello), and a vCPU waits for that handler to return.
  await new Promise((r) => setImmediate(r))
  const hints = opts.kernel ? readPercpuHints(opts.kernel, mem.size, opts.cpus) : []
  for (;;) {
    if (mem.isReleased) return { on: false, reason: 'the guest exited before its per-CPU areas were found' }
    const t0 = performance.now()
    const hint = hints.find((h) => checkPercpuAreas(mem, model.scan, h, opts.cpus))
    if (hint) {
      const scanMs = performance.now() - t0
      log.debug(`monitor: per-CPU areas where an earlier boot of this kernel and shape had them (checked in ${scanMs.toFixed(1)} ms)`)
      if (hint !== hints[0]) writePercpuHint(opts.kernel!, mem.size, opts.cpus, hint)
      return { on: true, monitor: start(mem, model, hint, opts), scanMs }
    }
    const areas = await scanPercpuAreasYielding(mem, model.scan, opts.cpus)
    if (mem.isReleased) continue
    const scanMs = performance.now() - t0
    log.debug(`monitor: per-CPU scan of ${(mem.size / 2 ** 20).toFixed(0)} MiB took ${scanMs.toFixed(1)} ms: ${areas ? `${areas.pas.length} CPUs` : 'none yet'}`)
    if (areas && areas.pas.length >= opts.cpus) {
      if (opts.kernel) writePercpuHint(opts.kernel, mem.size, opts.cpus, areas)
      return { on: true, monitor: start(mem, model, areas, opts), scanMs }
    }
    if (performance.now() >= deadline) {
      const got = areas ? `only ${areas.pas.length} of the guest's ${opts.cpus} CPUs` : `none of the guest's ${opts.cpus} CPUs`
      return { on: false, reason: `the per-CPU areas of ${got} were found in guest RAM (is this an x86-64 kernel without KASLR?)` }
    }
    await new Promise((r) => setTimeout(r, RETRY_EVERY_MS))
  }
}

function start(mem: GuestMemory, model: KernelModel & { ok: true }, areas: PercpuAreas, opts: OpenOptions): Monitor {
  const { layout } = model
  const view = new GuestKernelView(mem, model.btf, areas, { currentTask: layout.currentTask, activeMm: layout.task.activeMm, mmPgd: layout.mmPgd })
  return new Monitor(view, layout, opts).start()
}
