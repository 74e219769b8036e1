// The guest's unpacker of the per-run archive a restored guest gets (runtime/init/unpack.ts), fed
// archives written by the host's own writer (src/image/tree.ts): what the host packs is what lands.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { cpioFile, unpackCpio } from '../../runtime/init/unpack.js'
import { CpioWriter, MemorySink } from '../../src/image/cpio.js'
import { GuestTree } from '../../src/image/tree.js'

const dirs: string[] = []
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-unpack-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

async function archiveOf(tree: GuestTree): Promise<Buffer> {
  const file = path.join(tmp(), 'run.cpio')
  await tree.writeCpio(file)
  return fs.readFileSync(file)
}

describe('unpackCpio', () => {
  it('writes the host tree: files with their modes and content, directories, symlinks; a later entry replaces a file', async () => {
    const src = tmp()
    fs.mkdirSync(path.join(src, 'bin'))
    fs.writeFileSync(path.join(src, 'bin', 'tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 })
    fs.symlinkSync('tool', path.join(src, 'bin', 'alias'))
    const tree = new GuestTree()
    tree.addDir(src)
    tree.addData('/ktstr/run/spec.json', '{"mode":1}', 0o600)
    const root = tmp()
    fs.mkdirSync(path.join(root, 'ktstr', 'run'), { recursive: true })
    fs.writeFileSync(path.join(root, 'ktstr', 'run', 'spec.json'), 'the template had this')
    const n = unpackCpio(await archiveOf(tree), root)
    expect(n).toBeGreaterThanOrEqual(5)
    const at = (p: string) => path.join(root, p)
    expect(fs.readFileSync(at(`${src}/bin/tool`), 'utf8')).toBe('#!/bin/sh\necho hi\n')
    expect(fs.statSync(at(`${src}/bin/tool`)).mode & 0o777).toBe(0o755)
    expect(fs.readlinkSync(at(`${src}/bin/alias`))).toBe('tool')
    expect(fs.readFileSync(at('ktstr/run/spec.json'), 'utf8')).toBe('{"mode":1}')
    expect(fs.statSync(at('ktstr/run/spec.json')).mode & 0o777).toBe(0o600)
  })

  it('refuses a truncated archive, a bad magic and an entry that is not a file, directory or symlink, naming the byte', async () => {
    const tree = new GuestTree()
    tree.addData('/a', 'x'.repeat(100))
    const good = await archiveOf(tree)
    expect(() => unpackCpio(good.subarray(0, 150), tmp())).toThrow(/^run archive: truncated entry at byte 0$/)
    expect(() => unpackCpio(good.subarray(0, good.length - 100), tmp())).toThrow(/^run archive: truncated header at byte \d+$/)
    const bad = Buffer.from(good)
    bad.write('070707', 0, 'latin1')
    expect(() => unpackCpio(bad, tmp())).toThrow('run archive: bad magic "070707" at byte 0')
    const dev = new GuestTree()
    dev.addDev('/dev/null2', 1, 3)
    const devArchive = await archiveOf(dev)
    expect(() => unpackCpio(devArchive, tmp())).toThrow(/dev\/null2 has file type 020000/)
  })

  it('keeps every entry under the root, whatever its name says', async () => {
    const tree = new GuestTree()
    tree.addData('/../../escape', 'no')
    const root = tmp()
    unpackCpio(await archiveOf(tree), root)
    expect(fs.readFileSync(path.join(root, 'escape'), 'utf8')).toBe('no')
  })
})

describe('cpioFile', () => {
  it("reads one regular file's content without unpacking: its last regular-file entry; undefined for none or a directory", async () => {
    const newc = async (entries: [string, string][]) => {
      const sink = new MemorySink()
      const w = new CpioWriter(sink)
      for (const [name, content] of entries) await (content === 'dir' ? w.dir(name) : w.file(name, content))
      await w.finish()
      return sink.toBuffer()
    }
    // The writer refuses a name twice: two archives, the first without its trailer (110-byte header, then the name).
    const first = await newc([
      ['ktstr/run', 'dir'],
      ['ktstr/run/spec.json', '{"first":1}'],
      ['other', 'x'],
    ])
    const archive = Buffer.concat([first.subarray(0, first.indexOf('TRAILER!!!') - 110), await newc([['ktstr/run/spec.json', '{"second":2}']])])
    expect(cpioFile(archive, '/ktstr/run/spec.json')?.toString()).toBe('{"second":2}')
    expect(cpioFile(archive, '/other')?.toString()).toBe('x')
    expect(cpioFile(archive, '/missing')).toBeUndefined()
    expect(cpioFile(archive, '/ktstr/run')).toBeUndefined()
    expect(() => cpioFile(archive.subarray(0, archive.length - 200), '/other')).toThrow(/^run archive: truncated (entry|header) at byte \d+$/)
  })
})
