// virtio-blk rows: in a guest, sequential 1 MiB writes (then fsync) and reads, and random 4 KiB
// reads (read-ahead off), on a disk attached with `--disk`; vs the host doing the same with
// pwrite/pread on the same file. The guest drops its page cache before reading; the host reads
// through its own (warm) page cache, as the guest's disk does on the host.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { dist, execOut, guestKernel, quick } from './options.mjs'
import { addRow, notRun } from './table.mjs'

const { probeKvm } = await import(dist('src/vm/accel.js'))

// Runs in the guest (node -e SCRIPT DEV MIB NRAND) and on the host (PATH MIB NRAND): prints
// {"write": MiB/s, "read": MiB/s, "iops": random 4 KiB reads per second}.
const SCRIPT = `
const fs = require('fs')
const [file, mib, nrand] = [process.argv.at(-3), +process.argv.at(-2), +process.argv.at(-1)]
const guest = file.startsWith('/dev/')
const drop = () => guest && fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
const M = 1 << 20, big = Buffer.alloc(M, 0xa5), small = Buffer.alloc(4096)
const fd = fs.openSync(file, 'r+')
const rate = (n, f) => { const t = performance.now(); f(); return n / ((performance.now() - t) / 1000) }
const write = rate(mib, () => { for (let i = 0; i < mib; i++) fs.writeSync(fd, big, 0, M, i * M); fs.fsyncSync(fd) })
drop()
const read = rate(mib, () => { for (let i = 0; i < mib; i++) fs.readSync(fd, big, 0, M, i * M) })
if (guest) fs.writeFileSync('/sys/block/' + file.slice(5) + '/queue/read_ahead_kb', '0')
drop()
const iops = rate(nrand, () => { for (let i = 0; i < nrand; i++) fs.readSync(fd, small, 0, 4096, Math.floor(Math.random() * mib * 256) * 4096) })
console.log(JSON.stringify({ write, read, iops }))
`

const parse = (out) => JSON.parse(out.trim().split('\n').at(-1))

/** `backends`: which to measure; default QEMU, and our VMM where /dev/kvm is usable (else kvm-nested.mjs measures it). */
export async function benchDisk({ backends = probeKvm().usable ? ['qemu', 'kvm'] : ['qemu'] } = {}) {
  const kernel = guestKernel()
  if (!kernel) return notRun('virtio-blk', 'MiB/s', 'needs a guest kernel (KTSTR_KERNEL or ktstr kernel build)')
  const mib = quick ? 64 : 256
  const nrand = quick ? 2000 : 10000
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-bench-'))
  const file = path.join(tmp, 'disk.img')
  fs.writeFileSync(file, Buffer.alloc(0))
  fs.truncateSync(file, mib * 2 ** 20)
  try {
    const host = parse(spawnSync(process.execPath, ['-e', SCRIPT, file, String(mib), String(nrand)], { encoding: 'utf8' }).stdout)
    for (const backend of backends) {
      const label = backend === 'kvm' ? 'our VMM' : 'QEMU'
      const g = parse(execOut(kernel, ['--backend', backend, '--disk', file], ['node', '-e', SCRIPT, '/dev/vda', String(mib), String(nrand)]))
      const what = `host pwrite/pread, same file (${mib} MiB)`
      addRow(`virtio-blk ${label}, sequential 1 MiB write`, g.write, host.write, 'MiB/s', `${what}, then fsync`)
      addRow(`virtio-blk ${label}, sequential 1 MiB read`, g.read, host.read, 'MiB/s', `${what}; the guest's cache dropped`)
      addRow(`virtio-blk ${label}, random 4 KiB read`, g.iops, host.iops, 'IOPS', `host pread, ${nrand} reads; the guest's read-ahead off`)
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}
