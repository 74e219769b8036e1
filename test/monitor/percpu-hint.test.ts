// Where the per-CPU areas were, kept for the next boot of the same kernel and shape: the check of a
// hint against guest RAM, the hint file (round trip, another kernel, corrupt), and openMonitor
// using a good hint without scanning and replacing a stale one with what its scan found.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { type KernelModel, openMonitor } from '../../src/monitor/attach.js'
import { resolveLayout } from '../../src/monitor/layout.js'
import { PAGE_OFFSET_4LEVEL } from '../../src/monitor/paging.js'
import { readPercpuHints, writePercpuHint } from '../../src/monitor/percpu-hint.js'
import { checkPercpuAreas, percpuScanOffsets } from '../../src/monitor/percpu-scan.js'
import { fakeGuest, kernelBtf, MiB, OFF } from './fake-kernel.js'

const btf = kernelBtf()
const offs = percpuScanOffsets(btf)
const areas = (pas: number[]) => ({ pas, pageOffset: PAGE_OFFSET_4LEVEL, la57: false })

describe('checking a hint against guest RAM', () => {
  it('passes the areas the kernel has, and fails a moved, missing or out-of-RAM one', () => {
    const g = fakeGuest({ cpus: 2 })
    expect(checkPercpuAreas(g.mem, offs, areas([8 * MiB, 9 * MiB]), 2)).toBe(true)
    expect(checkPercpuAreas(g.mem, offs, areas([8 * MiB, 10 * MiB]), 2)).toBe(false)
    expect(checkPercpuAreas(g.mem, offs, areas([9 * MiB, 8 * MiB]), 2)).toBe(false)
    expect(checkPercpuAreas(g.mem, offs, areas([8 * MiB]), 2)).toBe(false)
    expect(checkPercpuAreas(g.mem, offs, areas([8 * MiB, 900 * MiB]), 2)).toBe(false)
  })
})

describe('the hint file', () => {
  let dir: string
  let kernel: { bzImage: string; dir: string }
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-hint-'))
    vi.stubEnv('XDG_CACHE_HOME', dir)
    kernel = { bzImage: path.join(dir, 'bzImage'), dir }
    fs.writeFileSync(kernel.bzImage, 'a kernel')
  })
  afterEach(() => {
    vi.unstubAllEnvs()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('reads back what was written for the same kernel and shape only', () => {
    writePercpuHint(kernel, 64 * MiB, 2, areas([8 * MiB, 9 * MiB]))
    expect(readPercpuHints(kernel, 64 * MiB, 2)).toEqual([areas([8 * MiB, 9 * MiB])])
    expect(readPercpuHints(kernel, 128 * MiB, 2)).toEqual([])
    expect(readPercpuHints(kernel, 64 * MiB, 4)).toEqual([])
    fs.writeFileSync(kernel.bzImage, 'a rebuilt kernel')
    expect(readPercpuHints(kernel, 64 * MiB, 2)).toEqual([])
  })

  it('keeps the last four layouts, most recent first, each once (cold boots and restores alternate)', () => {
    const [cold, warm] = [areas([8 * MiB, 9 * MiB]), areas([12 * MiB, 13 * MiB])]
    writePercpuHint(kernel, 64 * MiB, 2, cold)
    writePercpuHint(kernel, 64 * MiB, 2, warm)
    writePercpuHint(kernel, 64 * MiB, 2, cold)
    expect(readPercpuHints(kernel, 64 * MiB, 2)).toEqual([cold, warm])
    for (const mib of [20, 22, 24]) writePercpuHint(kernel, 64 * MiB, 2, areas([mib * MiB, (mib + 1) * MiB]))
    expect(readPercpuHints(kernel, 64 * MiB, 2).map((a) => a.pas[0])).toEqual([24 * MiB, 22 * MiB, 20 * MiB, 8 * MiB])
  })

  it('takes a corrupt file, or none, as no hint', () => {
    writePercpuHint(kernel, 64 * MiB, 2, areas([8 * MiB, 9 * MiB]))
    const [file] = fs.readdirSync(path.join(dir, 'ktstr', 'percpu'))
    const layouts = (l: string) => `{"layouts": [${l}]}`
    for (const bad of [
      '{"layouts": [',
      '{"pas": [1], "pageOffset": "1", "la57": false}',
      layouts('{"pas": [-1], "pageOffset": "1", "la57": false}'),
      layouts('{"pas": [1], "pageOffset": "x", "la57": false}'),
      layouts('{"pas": [1], "pageOffset": "1", "la57": false}, null'),
    ]) {
      fs.writeFileSync(path.join(dir, 'ktstr', 'percpu', file!), bad)
      expect(readPercpuHints(kernel, 64 * MiB, 2)).toEqual([])
    }
    expect(readPercpuHints({ bzImage: path.join(dir, 'gone'), dir }, 64 * MiB, 2)).toEqual([])
  })

  describe('openMonitor', () => {
    const layout = resolveLayout(btf)
    if (!layout.ok) throw new Error(layout.reason)
    const model: KernelModel = { ok: true, btf: () => btf, layout: layout.layout, scan: offs }
    // CPU 0 has a second page that passes the test higher up: the scan (top down) takes that one.
    const guest = () => {
      const g = fakeGuest({ cpus: 2 })
      g.mem.writeU64(50 * MiB + OFF.thisCpuOff, g.va(50 * MiB))
      g.mem.writeU32(50 * MiB + OFF.pcpuHot + 12, 0)
      return g
    }
    const open = async (g: ReturnType<typeof guest>) => {
      const s = await openMonitor(g.mem, model, { cpus: 2, hz: 10, kernel, retryMs: 0 })
      if (!s.on) throw new Error(s.reason)
      s.monitor.stop()
      return s.monitor.view.percpuOffsets.map((va) => Number(va - PAGE_OFFSET_4LEVEL))
    }

    it('uses a hint that passes the check instead of scanning, and puts it first', async () => {
      writePercpuHint(kernel, 64 * MiB, 2, areas([8 * MiB, 9 * MiB]))
      writePercpuHint(kernel, 64 * MiB, 2, areas([12 * MiB, 13 * MiB])) // another boot's, which this guest does not have
      expect(await open(guest())).toEqual([8 * MiB, 9 * MiB]) // the scan would have taken 50 MiB for CPU 0
      expect(readPercpuHints(kernel, 64 * MiB, 2).map((a) => a.pas)).toEqual([
        [8 * MiB, 9 * MiB],
        [12 * MiB, 13 * MiB],
      ])
    })

    it('scans past a stale hint and keeps what it found for the next boot', async () => {
      writePercpuHint(kernel, 64 * MiB, 2, areas([8 * MiB, 20 * MiB]))
      expect(await open(guest())).toEqual([50 * MiB, 9 * MiB])
      expect(readPercpuHints(kernel, 64 * MiB, 2)[0]?.pas).toEqual([50 * MiB, 9 * MiB])
    })
  })
})
