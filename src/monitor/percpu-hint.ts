/**
 * Where the last boots of a kernel and guest shape had their per-CPU areas, kept on disk so the next
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
  // v2: a list of layouts (a file of v1's single layout is not read).
  return kernelCacheFile(kernel, 'percpu', `${ramBytes}-${cpus}-v2`)
}

/**
 * Layouts kept per kernel and shape. A cold boot and a restore of its shape's snapshot have theirs
 * in different places (the template's initramfs was another size), and runs alternate between them.
 */
const KEEP = 4

/** The layouts the last boots of this kernel and shape had, most recent first; [] when none. */
export function readPercpuHints(kernel: KernelBtfSource, ramBytes: number, cpus: number): PercpuAreas[] {
  const file = hintFile(kernel, ramBytes, cpus)
  if (!file) return []
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { layouts?: unknown }
    if (!Array.isArray(v.layouts)) return []
    const out: PercpuAreas[] = []
    for (const l of v.layouts as { pas?: unknown; pageOffset?: unknown; la57?: unknown }[]) {
      if (!Array.isArray(l?.pas) || !l.pas.every((p) => Number.isSafeInteger(p) && p >= 0) || typeof l.pageOffset !== 'string' || typeof l.la57 !== 'boolean') return []
      out.push({ pas: l.pas as number[], pageOffset: BigInt(l.pageOffset), la57: l.la57 })
    }
    return out
  } catch {
    return [] // none yet, a BigInt that does not parse, or not JSON
  }
}

/** Keep `areas` first among this kernel and shape's layouts (the oldest beyond KEEP goes). */
export function writePercpuHint(kernel: KernelBtfSource, ramBytes: number, cpus: number, areas: PercpuAreas): void {
  const file = hintFile(kernel, ramBytes, cpus)
  if (!file) return
  const same = (a: PercpuAreas) => a.la57 === areas.la57 && a.pageOffset === areas.pageOffset && a.pas.join() === areas.pas.join()
  const layouts = [areas, ...readPercpuHints(kernel, ramBytes, cpus).filter((a) => !same(a))].slice(0, KEEP)
  try {
    // Whole or not at all: concurrent runs may write it too.
    const json = layouts.map((a) => ({ pas: a.pas, pageOffset: String(a.pageOffset), la57: a.la57 }))
    writeFileAtomically(file, Buffer.from(`${JSON.stringify({ layouts: json })}\n`))
  } catch {
    // A read-only or full cache: the next run scans again.
  }
}
