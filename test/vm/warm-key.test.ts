// The warm-start snapshot key (src/vm/warm/key.ts): the same guest shape gives the same key, and
// a change in anything that shapes the guest — the kernel's content, the base image, the topology,
// memory, the VMM, the command line, what the template preloads (Vitest's worker with its
// environment) — gives another, so an old snapshot is never served.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fileSha256 } from '../../src/util/file-hash.js'
import { type SnapshotShape, snapshotKey } from '../../src/vm/warm/key.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-warm-key-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('snapshotKey', () => {
  it('is stable for one shape and changes with each input', () => {
    const kernel = path.join(dir, 'bzImage')
    fs.writeFileSync(kernel, 'kernel one')
    const vmm = path.join(dir, 'qemu')
    fs.writeFileSync(vmm, 'qemu')
    const shape: SnapshotShape = {
      kernel,
      baseImageKey: 'base1',
      topology: { numaNodes: 1, llcs: 1, coresPerLlc: 2, threadsPerCore: 1 },
      memoryMib: 512,
      backend: 'qemu-tcg',
      vmm,
      cmdline: 'console=ttyS0 quiet',
      nestedKvm: false,
    }
    const k = snapshotKey(shape)
    expect(k).toMatch(/^[0-9a-f]{32}$/)
    expect(snapshotKey({ ...shape })).toBe(k)
    const changed: Partial<SnapshotShape>[] = [
      { baseImageKey: 'base2' },
      { topology: { numaNodes: 1, llcs: 1, coresPerLlc: 4, threadsPerCore: 1 } },
      { memoryMib: 1024 },
      { backend: 'qemu-kvm' },
      { cmdline: 'console=ttyS0 loglevel=7' },
      { nestedKvm: true },
      { vmmConfig: 'withhold=steal-time' },
      // A Vitest run's template, and one whose worker gets another environment (colours differ).
      { template: { vitest: { workerEntry: '/w.js', env: { VITEST: 'true' }, cwd: '/p' } } },
      { template: { vitest: { workerEntry: '/w.js', env: { VITEST: 'true', NO_COLOR: '1' }, cwd: '/p' } } },
    ]
    const keys = changed.map((c) => snapshotKey({ ...shape, ...c }))
    expect(new Set([k, ...keys]).size).toBe(changed.length + 1)
    // A rebuilt kernel at the same path: new content, new key.
    fs.writeFileSync(kernel, 'kernel two')
    fs.utimesSync(kernel, new Date(), new Date(Date.now() + 5000))
    expect(snapshotKey(shape)).not.toBe(k)
    // Another QEMU binary at the same path (an upgrade): new key.
    const k2 = snapshotKey(shape)
    fs.writeFileSync(vmm, 'qemu, newer')
    expect(snapshotKey(shape)).not.toBe(k2)
  })

  it('hashes a file by its content', () => {
    const f = path.join(dir, 'f')
    fs.writeFileSync(f, 'abc')
    expect(fileSha256(f)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })
})
