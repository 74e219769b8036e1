// The monitor's kernel model (src/monitor/attach.ts kernelModel, src/monitor/model-cache.ts): the
// first run parses the kernel's BTF and keeps the layout on disk; a later process takes the layout
// from there without parsing the BTF (shown with the BTF gone: the model is still whole, and only
// its btf() fails); a damaged or foreign file means parsing again. Each "process" is a fresh copy
// of the modules (vi.resetModules); the kernel is a fake bzImage whose BTF is seeded in the cache.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { resolveLayout } from '../../src/monitor/layout.js'
import { kernelBtf, kernelBtfBlob } from './fake-kernel.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-model-cache-'))
const savedXdg = process.env.XDG_CACHE_HOME
const kernel = { bzImage: path.join(dir, 'bzImage'), dir }
const expected = resolveLayout(kernelBtf())

beforeAll(() => {
  process.env.XDG_CACHE_HOME = path.join(dir, 'cache')
  fs.writeFileSync(kernel.bzImage, Buffer.alloc(4096, 0x5a)) // not a bzImage: its BTF only from the cache
})
afterAll(() => {
  if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME
  else process.env.XDG_CACHE_HOME = savedXdg
  fs.rmSync(dir, { recursive: true, force: true })
})

async function freshProcess() {
  vi.resetModules()
  const attach = await import('../../src/monitor/attach.js')
  const cache = await import('../../src/monitor/model-cache.js')
  const { btfCacheFile } = await import('../../src/kernel/btf-cache.js')
  const { fileSha256 } = await import('../../src/util/file-hash.js')
  const btfFile = btfCacheFile(kernel, fileSha256(kernel.bzImage))
  return { ...attach, ...cache, btfFile }
}

describe("the monitor's kernel model", () => {
  it('is parsed once, then read from the cache without the BTF; damaged files mean parsing again', async () => {
    if (!expected.ok) throw new Error(expected.reason)
    const first = await freshProcess()
    fs.mkdirSync(path.dirname(first.btfFile), { recursive: true })
    fs.writeFileSync(first.btfFile, kernelBtfBlob())
    const parsed = first.kernelModel(kernel)
    expect(parsed).toMatchObject({ ok: true, layout: expected.layout })
    if (!parsed.ok) return
    expect(parsed.btf().percpuVar('runqueues').offset).toBe(expected.layout.runqueues)
    // One model per kernel in a process.
    expect(first.kernelModel(kernel)).toBe(parsed)
    const modelFile = first.modelCacheFile(kernel)!
    expect(fs.existsSync(modelFile)).toBe(true)

    // The BTF gone: a new process still has the whole layout, and only btf() needs the BTF.
    fs.rmSync(first.btfFile)
    const second = await freshProcess()
    const cached = second.kernelModel(kernel)
    expect(cached).toEqual({ ok: true, btf: expect.any(Function), layout: expected.layout, scan: parsed.scan })
    if (cached.ok) expect(() => cached.btf()).toThrow(/not a bzImage/)

    // A damaged or foreign model file: parsed again (here: no BTF, so the monitor is off, saying why).
    const good = fs.readFileSync(modelFile, 'utf8')
    const json = JSON.parse(good)
    for (const bad of [
      '',
      '{"format":1',
      JSON.stringify({ ...json, format: 999 }),
      JSON.stringify({ ...json, layout: { ...json.layout, runqueues: -8 } }),
      JSON.stringify({ ...json, layout: { ...json.layout, rq: { ...json.layout.rq, clock: '8' } } }),
      JSON.stringify({ ...json, scan: undefined }),
    ]) {
      fs.writeFileSync(modelFile, bad)
      const r = (await freshProcess()).kernelModel(kernel)
      expect(r, bad).toEqual({ ok: false, reason: expect.stringContaining('not a bzImage') })
    }

    // With the BTF back, a parse writes a good file again.
    fs.writeFileSync(first.btfFile, kernelBtfBlob())
    expect((await freshProcess()).kernelModel(kernel)).toMatchObject({ ok: true, layout: expected.layout })
    expect(JSON.parse(fs.readFileSync(modelFile, 'utf8'))).toEqual(json)
  })

  it('keeps the optional fields a kernel lacks as undefined', async () => {
    const p = await freshProcess()
    const layout = { ...(expected.ok ? expected.layout : ({} as never)), mmPgd: undefined, eventsNote: 'none' }
    const k2 = { bzImage: path.join(dir, 'bzImage2'), dir }
    fs.writeFileSync(k2.bzImage, 'another kernel')
    const file = p.modelCacheFile(k2)!
    p.writeCachedModel(file, { layout, scan: { thisCpuOff: 1, cpuNumber: 2 } })
    expect(p.readCachedModel(file)).toEqual({ layout, scan: { thisCpuOff: 1, cpuNumber: 2 } })
  })
})
