/**
 * Two runs on one `--disk` image, for both backends' suites: while the first run's VM holds the
 * image, a second run (read-write or `,ro`) is refused before booting with the same one line.
 */
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'vitest'
import { checkDisk } from '../../src/vm/disk.js'
import type { CliResult } from './cli.js'
import { scratch } from './disk.js'

/** `ktstr exec ARGS -- CMD` with the suite's backend. */
export type Exec = (args: string[], cmd: string[]) => Promise<CliResult>

export async function secondRunIsRefused(exec: Exec, waitMs: number): Promise<void> {
  const img = scratch(1 << 20)
  try {
    const first = exec(['--disk', img], ['sh', '-c', 'sleep 3; echo first done'])
    // Once the first run's VM holds the image, the host's check sees its locks.
    const held = () => {
      try {
        checkDisk({ path: img, readOnly: true })
        return false
      } catch {
        return true
      }
    }
    const end = Date.now() + waitMs
    while (!held() && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    for (const disk of [img, `${img},ro`]) {
      const second = await exec(['--disk', disk], ['true'])
      expect(second.code).toBe(125)
      expect(second.stderr.trim()).toBe(`ktstr: disk ${img} is in use by another guest (locked read-write); stop that guest first or give this one a copy of the image`)
    }
    const r = await first
    expect(r.stdout).toContain('first done')
    expect(r.code).toBe(0)
  } finally {
    fs.rmSync(path.dirname(img), { recursive: true, force: true })
  }
}
