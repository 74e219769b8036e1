// The host reads a running QEMU guest's RAM without its help (VmProcess.memory, handed out on the
// session): a guest program writes a unique marker into a page bound to a NUMA node, reads the
// page's physical address from /proc/self/pagemap (root sees PFNs) and prints it, then waits; the
// host finds the marker at that address. Two boots: one node (the machine's memory-backend), and
// two nodes with 4 GiB, so node 1's RAM is split around the PCI hole and its user pages come from
// above 4 GiB (ZONE_NORMAL) — the layout of QEMU's pc machine checked in a real guest.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { StreamId } from '../../runtime/protocol/index.js'
import { bootGuest } from '../../src/vm/boot.js'
import { GuestMemoryError } from '../../src/vm/memory/guest-memory.js'
import { guestSkipReason } from '../helpers/guest.js'

const GiB = 2 ** 30

// Binds itself to each node named on the command line in turn, faults in one page there, marks it
// and prints its physical address; exits at end of stdin, so the pages stay put while the host reads.
const SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int pagemap = open("/proc/self/pagemap", O_RDONLY);
  if (pagemap < 0) { perror("pagemap"); return 2; }
  for (int i = 2; i < argc; i++) {
    int node = atoi(argv[i]);
    unsigned long mask = 1UL << node;
    if (syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, &mask, 64) != 0) { perror("set_mempolicy"); return 2; }
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED || mlock(p, 4096) != 0) { perror("mmap"); return 2; }
    snprintf(p, 4096, "%s-node%d", argv[1], node);
    uint64_t e;
    if (pread(pagemap, &e, 8, (uintptr_t)p / 4096 * 8) != 8 || !(e >> 63)) { fprintf(stderr, "page not present\n"); return 2; }
    printf("node=%d pa=0x%llx\n", node, (unsigned long long)((e & ((1ULL << 55) - 1)) * 4096));
    fflush(stdout);
  }
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {}
  return 0;
}
`

const hasCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0
const skipReason = guestSkipReason ?? (hasCc ? undefined : 'no C compiler (apt-get install gcc)')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-guest-memory-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

function buildMarker(): string {
  const bin = path.join(tmp, 'pagemap-marker')
  fs.writeFileSync(`${bin}.c`, SOURCE)
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', bin, `${bin}.c`], { encoding: 'utf8' })
  if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`)
  return bin
}

/** Boots, runs the marker program on `nodes`, and checks each marker through the session's GuestMemory. */
async function markersFound(opts: { topology: string; memoryMib: number; nodes: number[] }): Promise<{ node: number; pa: number }[]> {
  const bin = buildMarker()
  const tag = `ktstr-marker-${randomBytes(8).toString('hex')}`
  const session = await bootGuest({
    backend: 'qemu',
    topology: opts.topology,
    memoryMib: opts.memoryMib,
    include: [bin],
    mode: { kind: 'exec', argv: [bin, tag, ...opts.nodes.map(String)], tty: false },
  })
  let out = ''
  let err = ''
  const lines = new Promise<{ node: number; pa: number }[]>((resolve) => {
    session.channel.on('data', (stream, chunk) => {
      if (stream === StreamId.Stderr) err += chunk
      if (stream !== StreamId.Stdout) return
      out += chunk
      const found = [...out.matchAll(/node=(\d+) pa=(0x[0-9a-f]+)\n/g)].map((m) => ({ node: Number(m[1]), pa: Number(m[2]) }))
      if (found.length === opts.nodes.length) resolve(found)
    })
    void session.done.then(() => resolve([]))
  })
  const found = await lines
  try {
    expect(found, `guest stdout: ${out}\nstderr: ${err}\nconsole: ${session.consoleTail(20).join('\n')}`).toHaveLength(opts.nodes.length)
    const mem = session.memory!
    for (const { node, pa } of found) {
      const want = `${tag}-node${node}\0`
      expect(Buffer.from(mem.readBytes(pa, want.length)).toString('latin1')).toBe(want)
    }
  } finally {
    session.channel.sendData(StreamId.Stdin, Buffer.alloc(0))
  }
  expect(await session.done).toEqual({ kind: 'exited', code: 0, signal: null })
  // The VM is gone: its RAM was unmapped, and reading says so instead of faulting.
  expect(() => session.memory!.readBytes(found[0]!.pa, 8)).toThrow(GuestMemoryError)
  return found
}

describe.skipIf(skipReason)("the host reads a QEMU guest's RAM through VmProcess.memory", () => {
  it('one NUMA node: the marker is at the physical address the guest reports', { timeout: 180_000 }, async () => {
    const [m] = await markersFound({ topology: '1n1l2c1t', memoryMib: 512, nodes: [0] })
    expect(m!.pa).toBeLessThan(512 * 2 ** 20)
  })

  it('two NUMA nodes, 4 GiB: node 0 below 2 GiB, node 1 from its part above 4 GiB', { timeout: 240_000 }, async () => {
    const [n0, n1] = await markersFound({ topology: '2n2l1c1t', memoryMib: 4096, nodes: [0, 1] })
    expect(n0!.pa).toBeLessThan(2 * GiB)
    // Node 1 is RAM [2 GiB, 4 GiB): guest-physical 2-3 GiB and 4-5 GiB; user pages come from ZONE_NORMAL.
    expect(n1!.pa).toBeGreaterThanOrEqual(4 * GiB)
    expect(n1!.pa).toBeLessThan(5 * GiB)
  })
})
