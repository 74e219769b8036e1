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
import * as v from 'valibot'
import type { KernelBtfSource } from '../kernel/btf-cache.js'
import { writeFileAtomically } from '../util/durable.js'
import { kernelCacheFile } from './kernel-file.js'
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
  return kernelCacheFile(kernel, 'monitor', String(MODEL_FORMAT))
}

/** The model kept in `file` (modelCacheFile), if it is there and sound. */
export function readCachedModel(file: string): CachedModel | undefined {
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

export function writeCachedModel(file: string, model: CachedModel): void {
  try {
    writeFileAtomically(file, Buffer.from(`${JSON.stringify({ format: MODEL_FORMAT, ...model })}\n`))
  } catch {
    // A read-only or full cache: the next run parses the BTF again.
  }
}
