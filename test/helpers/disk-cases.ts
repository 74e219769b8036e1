/**
 * The guest commands of the `--disk` suites, run unchanged by both backends (test/cli/disk.test.ts
 * with qemu, test/kvm/disk.test.ts with our VMM): data lands in the host file, a read-only disk
 * refuses writes, the bps throttle paces them.
 */
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'vitest'
import { MiB, pattern, scratch, sha } from './disk.js'

export interface DiskRun {
  code: number | null
  stdout: string
}

export interface DiskCase {
  name: string
  /** Makes the disk images; returns the exec arguments, the guest script and the checks. */
  prepare(): { args: string[]; script: string; verify(r: DiskRun): void; cleanup(): void }
}

const made = (files: string[]) => () => files.forEach((f) => fs.rmSync(path.dirname(f), { recursive: true, force: true }))
const WRITE_4MIB = `yes ktstr-pattern | head -c ${4 * MiB} | dd of=/dev/vda bs=64k oflag=direct conv=fsync 2>/dev/null`

export const diskCases: DiskCase[] = [
  {
    name: 'writes a pattern to /dev/vda that the host file then holds exactly; the second disk is /dev/vdb',
    prepare() {
      const a = scratch(16 * MiB)
      const b = scratch(2 * MiB)
      return {
        args: ['--disk', a, '--disk', b],
        script: [
          'cat /sys/block/vda/size /sys/block/vdb/size /sys/block/vda/ro',
          WRITE_4MIB,
          'echo rc=$?',
          'printf second-disk | dd of=/dev/vdb conv=fsync 2>/dev/null',
          'sync',
        ].join('; '),
        verify(r) {
          expect(r.stdout).toBe(`${(16 * MiB) / 512}\n${(2 * MiB) / 512}\n0\nrc=0\n`)
          expect(r.code).toBe(0)
          const host = fs.readFileSync(a)
          expect(sha(host.subarray(0, 4 * MiB))).toBe(sha(pattern(4 * MiB)))
          expect(host.subarray(4 * MiB).every((x) => x === 0)).toBe(true)
          const second = fs.readFileSync(b)
          expect(second.subarray(0, 11).toString()).toBe('second-disk')
          expect(second.subarray(11).every((x) => x === 0)).toBe(true)
        },
        cleanup: made([a, b]),
      }
    },
  },
  {
    name: 'a read-only disk refuses writes in the guest and stays unchanged',
    prepare() {
      const disk = scratch(MiB)
      fs.writeFileSync(disk, pattern(MiB))
      const before = sha(fs.readFileSync(disk))
      return {
        args: ['--disk', `${disk},ro`],
        script: 'cat /sys/block/vda/ro; echo x | dd of=/dev/vda conv=fsync 2>/dev/null; echo rc=$?; head -c 14 /dev/vda',
        verify(r) {
          expect(r.stdout).toBe('1\nrc=1\nktstr-pattern\n')
          expect(r.code).toBe(0)
          expect(sha(fs.readFileSync(disk))).toBe(before)
        },
        cleanup: made([disk]),
      }
    },
  },
  {
    name: 'bps=N paces writes: 4 MiB at 1 MiB/s go at 1 MiB/s (+20 %, -30 %) in the guest',
    prepare() {
      const disk = scratch(16 * MiB)
      return {
        args: ['--disk', `${disk},bps=${MiB}`],
        script: ['a=$(cut -d" " -f1 /proc/uptime)', WRITE_4MIB, 'b=$(cut -d" " -f1 /proc/uptime)', 'echo "$a $b"'].join('; '),
        verify(r) {
          expect(r.code).toBe(0)
          const [t0, t1] = r.stdout.trim().split(' ').map(Number)
          const rate = 4 / (t1! - t0!) // MiB/s
          // Faster than the pace is what bps forbids. Slower is the guest's own time between its
          // requests, which the bucket's burst (a tenth of a second of it) does not make up: in a
          // guest of our VMM nested in a TCG guest that went to 0.79 MiB/s once.
          expect(rate).toBeGreaterThan(0.7)
          expect(rate).toBeLessThan(1.2)
          expect(sha(fs.readFileSync(disk).subarray(0, 4 * MiB))).toBe(sha(pattern(4 * MiB)))
        },
        cleanup: made([disk]),
      }
    },
  },
]
