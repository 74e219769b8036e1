/**
 * What the monitor needs of a kernel's BTF to sample (its field layout and the per-CPU scan's
 * offsets), kept on disk per kernel so that a run starts its monitor without parsing the BTF:
 * parsing vmlinux's 70,000 types costs the host 0.1–0.2 s, and `ktstr exec` would pay it every
 * run while the guest resumes. The BTF itself is then parsed only when something reads the
 * scheduler's maps. Keyed by the kernel's content and by MODEL_FORMAT (bump it when Layout or
 * PercpuOffsets change); a file that is missing, unreadable or malformed means parsing, and one
 * that cannot be written is no error.
 */
import fs from 'node:fs'
import path from 'node:path'
import * as v from 'valibot'
import type { KernelBtfSource } from '../kernel/btf-cache.js'
import { writeFileAtomically } from '../util/durable.js'
import { fileSha256 } from '../util/file-hash.js'
import { cacheRoot } from '../util/paths.js'
import type { Layout } from './layout.js'
import type { PercpuOffsets } from './percpu-scan.js'

export const MODEL_FORMAT = 1

export interface CachedModel {
  layout: Layout
  scan: PercpuOffsets
}

const offset = v.pipe(v.number(), v.safeInteger(), v.minValue(0))
const CachedModelSchema = v.object({
  format: v.literal(MODEL_FORMAT),
  layout: v.object({
    runqueues: offset,
    currentTask: offset,
    rq: v.object({ nrRunning: offset, clock: offset, curr: offset, scxNrRunning: offset, localDsqNr: offset, runnableList: offset }),
    task: v.object({
      pid: offset,
      comm: offset,
      commLen: offset,
      policy: offset,
      runnableAt: offset,
      runnableNode: offset,
      activeMm: v.optional(offset),
    }),
    mmPgd: v.optional(offset),
    eventsNote: v.optional(v.string()),
  }),
  scan: v.object({ thisCpuOff: offset, cpuNumber: offset }),
})

export function modelCacheFile(kernel: KernelBtfSource): string | undefined {
  try {
    return path.join(cacheRoot(), 'monitor', `${fileSha256(kernel.bzImage).slice(0, 16)}-${MODEL_FORMAT}.json`)
  } catch {
    return undefined
  }
}

export function readCachedModel(kernel: KernelBtfSource): CachedModel | undefined {
  const file = modelCacheFile(kernel)
  if (!file) return undefined
  try {
    const r = v.safeParse(CachedModelSchema, JSON.parse(fs.readFileSync(file, 'utf8')))
    if (!r.success) return undefined
    const { layout, scan } = r.output
    // JSON drops the fields that were undefined; Layout names them.
    const { activeMm, ...task } = layout.task
    const { mmPgd, eventsNote, ...rest } = layout
    return { layout: { ...rest, task: { ...task, activeMm }, mmPgd, eventsNote }, scan }
  } catch {
    return undefined
  }
}

export function writeCachedModel(kernel: KernelBtfSource, model: CachedModel): void {
  const file = modelCacheFile(kernel)
  if (!file) return
  try {
    writeFileAtomically(file, Buffer.from(`${JSON.stringify({ format: MODEL_FORMAT, ...model })}\n`))
  } catch {
    // A read-only or full cache: the next run parses the BTF again.
  }
}
