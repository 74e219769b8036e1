/**
 * Where the last boot of a kernel and guest shape had its per-CPU areas, kept on disk so the next
 * monitor checks those pages first instead of scanning guest RAM (a scan faults in hundreds of MiB
 * on the host: ~0.25 s of a 1 GiB guest, while the run waits). Without KASLR a kernel puts them at
 * the same addresses on every boot of the same shape, and a guest restored from a snapshot has
 * them where its template had. A hint is only a guess: checkPercpuAreas() tests it, a bad or
 * missing one costs the scan, and a file that cannot be read or written is no error.
 */
import fs from 'node:fs'
import type { KernelBtfSource } from '../kernel/btf-cache.js'
import { writeFileAtomically } from '../util/durable.js'
import { kernelCacheFile } from './kernel-file.js'
import type { PercpuAreas } from './percpu-scan.js'

function hintFile(kernel: KernelBtfSource, ramBytes: number, cpus: number): string | undefined {
  return kernelCacheFile(kernel, 'percpu', `${ramBytes}-${cpus}`)
}

export function readPercpuHint(kernel: KernelBtfSource, ramBytes: number, cpus: number): PercpuAreas | undefined {
  const file = hintFile(kernel, ramBytes, cpus)
  if (!file) return undefined
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { pas?: unknown; pageOffset?: unknown; la57?: unknown }
    if (!Array.isArray(v.pas) || !v.pas.every((p) => Number.isSafeInteger(p) && p >= 0) || typeof v.pageOffset !== 'string' || typeof v.la57 !== 'boolean') return undefined
    return { pas: v.pas as number[], pageOffset: BigInt(v.pageOffset), la57: v.la57 }
  } catch {
    return undefined
  }
}

export function writePercpuHint(kernel: KernelBtfSource, ramBytes: number, cpus: number, areas: PercpuAreas): void {
  const file = hintFile(kernel, ramBytes, cpus)
  if (!file) return
  try {
    // Whole or not at all: concurrent runs may write it too.
    writeFileAtomically(file, Buffer.from(`${JSON.stringify({ pas: areas.pas, pageOffset: String(areas.pageOffset), la57: areas.la57 })}\n`))
  } catch {
    // A read-only or full cache: the next run scans again.
  }
}
