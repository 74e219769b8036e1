// QEMU's guest RAM as the host maps it: the guest-physical layout of the `pc` machine (the
// expectations are what real guests showed: e820 of a 3584 MiB guest is 0-3 GiB and 4-4.5 GiB, of a
// 3583 MiB one all below 4 GiB), the shared backing files (real files, real mmap), and one
// GuestMemory type for both backends.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseTopology } from '../../runtime/protocol/topology.js'
import { mapHostRam } from '../../src/vm/kvm/memory/host-ram.js'
import { x86MemoryLayout } from '../../src/vm/kvm/memory/layout.js'
import { GuestMemory, GuestMemoryError } from '../../src/vm/memory/guest-memory.js'
import { ramFolderParent } from '../../src/vm/memory/shared-file.js'
import { createQemuRam } from '../../src/vm/qemu/ram-backing.js'
import { pcBelow4g, pcRamPieces } from '../../src/vm/qemu/ram-layout.js'
import { sweepRunDirs } from '../../src/vm/run-dir.js'
import { repoRoot } from '../helpers/repo.js'

const MiB = 2 ** 20
const GiB = 2 ** 30
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-qemu-ram-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** This process's mappings of `file`, also once its folder was renamed for removal and it was unlinked. */
const mapsOf = (file: string) =>
  fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(path.basename(path.dirname(file))) && l.includes(`/${path.basename(file)}`))

describe("QEMU pc machine's guest-physical RAM layout", () => {
  it('all RAM below 4 GiB up to 3.5 GiB; from 3.5 GiB, 3 GiB below and the rest from 4 GiB', () => {
    expect(pcBelow4g(512 * MiB)).toBe(512 * MiB)
    expect(pcBelow4g(3583 * MiB)).toBe(3583 * MiB)
    expect(pcBelow4g(3584 * MiB)).toBe(3 * GiB)
    expect(pcRamPieces([3584 * MiB])).toEqual([
      { backend: 0, fileOffset: 0, gpa: 0, size: 3 * GiB },
      { backend: 0, fileOffset: 3 * GiB, gpa: 4 * GiB, size: 512 * MiB },
    ])
    expect(pcRamPieces([3583 * MiB])).toEqual([{ backend: 0, fileOffset: 0, gpa: 0, size: 3583 * MiB }])
  })

  it("NUMA nodes' memdevs follow each other in node order, split around the hole where they cross it", () => {
    expect(pcRamPieces([2 * GiB, 2 * GiB])).toEqual([
      { backend: 0, fileOffset: 0, gpa: 0, size: 2 * GiB },
      { backend: 1, fileOffset: 0, gpa: 2 * GiB, size: 1 * GiB },
      { backend: 1, fileOffset: 1 * GiB, gpa: 4 * GiB, size: 1 * GiB },
    ])
    expect(pcRamPieces([257 * MiB, 256 * MiB])).toEqual([
      { backend: 0, fileOffset: 0, gpa: 0, size: 257 * MiB },
      { backend: 1, fileOffset: 0, gpa: 257 * MiB, size: 256 * MiB },
    ])
    expect(pcRamPieces([3 * GiB, 1 * GiB])).toEqual([
      { backend: 0, fileOffset: 0, gpa: 0, size: 3 * GiB },
      { backend: 1, fileOffset: 0, gpa: 4 * GiB, size: 1 * GiB },
    ])
  })
})

describe('guest RAM files shared with QEMU', () => {
  it('maps each node file at its guest-physical place; writes on either side are seen on the other', () => {
    const ram = createQemuRam(parseTopology('2n2l1c1t'), 4096, tmp)
    const [f0, f1] = ram.files as [string, string]
    expect(path.dirname(f0)).toMatch(new RegExp(`^${tmp}/ktstr-vm-${process.pid}-\\d+-`))
    expect([fs.statSync(f0).size, fs.statSync(f1).size]).toEqual([2 * GiB, 2 * GiB])
    expect(fs.statSync(f0).blocks).toBe(0) // sparse: nothing is allocated before the guest writes
    expect(ram.memory.size).toBe(4 * GiB)
    expect(ram.memory.regions.map((r) => [r.base, r.bytes.length])).toEqual([
      [0, 2 * GiB],
      [2 * GiB, 1 * GiB],
      [4 * GiB, 1 * GiB],
    ])
    // What "QEMU" writes into node 1's file at 1 GiB + 8 is guest-physical 4 GiB + 8.
    const fd = fs.openSync(f1, 'r+')
    fs.writeSync(fd, Buffer.from('marker-high'), 0, 11, GiB + 8)
    expect(Buffer.from(ram.memory.readBytes(4 * GiB + 8, 11)).toString()).toBe('marker-high')
    ram.memory.write(2 * GiB + 100, Buffer.from('from-host'))
    const back = Buffer.alloc(9)
    fs.readSync(fd, back, 0, 9, 100)
    expect(back.toString()).toBe('from-host')
    fs.closeSync(fd)
    expect(() => ram.memory.readU8(3 * GiB)).toThrow(GuestMemoryError)

    // The folder goes once QEMU has the files open; the mappings stay.
    ram.unlink()
    expect(fs.existsSync(path.dirname(f0))).toBe(false)
    expect(Buffer.from(ram.memory.readBytes(4 * GiB + 8, 11)).toString()).toBe('marker-high')
    expect(mapsOf(f1).length).toBeGreaterThan(0)
    ram.release()
    ram.release()
    expect(mapsOf(f0)).toEqual([])
    expect(mapsOf(f1)).toEqual([])
    expect(() => ram.memory.readBytes(4 * GiB + 8, 11)).toThrow('guest range 0x100000008+11 is gone: the VM has exited and its RAM was unmapped')
  })

  it('one node: one file, the whole guest below 4 GiB', () => {
    const ram = createQemuRam(parseTopology('1n1l2c1t'), 512, tmp)
    expect(ram.files).toHaveLength(1)
    expect(ram.memory.regions.map((r) => [r.base, r.bytes.length])).toEqual([[0, 512 * MiB]])
    ram.release()
    expect(fs.readdirSync(tmp)).toEqual([])
  })

  it('files go to /dev/shm when it has room for the guest, else to TMPDIR; a parent that cannot hold them is one line', () => {
    expect(ramFolderParent(GiB, path.join(tmp, 'no-shm'))).toBe(os.tmpdir())
    expect(ramFolderParent(2 ** 60, tmp)).toBe(os.tmpdir())
    expect(ramFolderParent(MiB, tmp)).toBe(tmp)
    expect(() => createQemuRam(parseTopology('1n1l1c1t'), 512, path.join(tmp, 'missing'))).toThrow(/^cannot create the guest's RAM files in .*missing: ENOENT/)
  })

  it("a host killed (SIGKILL) while it holds RAM files leaves a folder the next start's sweep removes", () => {
    const shm = fs.mkdtempSync(path.join(tmp, 'shm-'))
    const script = `
      import { parseTopology } from ${JSON.stringify(path.join(repoRoot, 'dist', 'runtime', 'protocol', 'topology.js'))}
      import { createQemuRam } from ${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'vm', 'qemu', 'ram-backing.js'))}
      const ram = createQemuRam(parseTopology('2n2l1c1t'), 1024, ${JSON.stringify(shm)})
      process.stdout.write(ram.files.join('\\n'))
      process.kill(process.pid, 'SIGKILL')`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
    expect(r.signal).toBe('SIGKILL')
    const files = r.stdout.split('\n')
    expect(files.map((f) => fs.statSync(f).size)).toEqual([512 * MiB, 512 * MiB])
    sweepRunDirs(shm)
    expect(fs.readdirSync(shm)).toEqual([])
  })

  it("the kvm VMM's RAM is the same GuestMemory type, released when it is unmapped", () => {
    const ram = mapHostRam(x86MemoryLayout(64 * MiB))
    expect(ram.memory).toBeInstanceOf(GuestMemory)
    ram.memory.writeU64(0x1000, 42n)
    expect(ram.memory.readU64(0x1000)).toBe(42n)
    ram.unmap()
    expect(ram.memory.isReleased).toBe(true)
    expect(() => ram.memory.readU64(0x1000)).toThrow(GuestMemoryError)
  })
})
