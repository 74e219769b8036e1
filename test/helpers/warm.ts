/**
 * Shared by the warm-start suites of both backends (test/vm/warm-start.test.ts for QEMU,
 * test/kvm/warm.test.ts for our VMM): a snapshot folder per test, removed after the file, and
 * what a run's stderr (`--timing`, KTSTR_LOG=debug) says the warm start did.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll } from 'vitest'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

/** A folder of its own for a test's snapshots (KTSTR_SNAPSHOT_DIR), removed after the file. */
export function snapshotDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-snapshots-'))
  dirs.push(d)
  return d
}

/** The snapshots in `dir` of one backend's format (their state file's extension). */
export const snapshots = (dir: string, format: 'qemu' | 'kvm') => fs.readdirSync(dir).filter((n) => new RegExp(`^snapshot-[0-9a-f]+\\.${format}$`).test(n))
/** The run restored a snapshot (its timing has a restore phase). */
export const restored = (stderr: string) => /^ {2}restore +\d+\.\d+ s$/m.test(stderr)
/** The run made its shape's snapshot first. */
export const made = (stderr: string) => /warm start: snapshot \S+ made in \d+ ms/.test(stderr)

/** What a failed run said, for the assertion message. */
export const why = (r: { stderr: string }) =>
  r.stderr
    .split('\n')
    .filter((l) => !l.startsWith('[ktstr] console'))
    .slice(-25)
    .join('\n')

/**
 * Lists a marker an earlier run may have left, and anything a rehearsal (runtime/init/template.ts)
 * would leave behind: run()'s folder and cgroups, its scratch folder. Then leaves its own marker and
 * prints the guest's wall clock.
 */
export const MARK = ['sh', '-c', 'ls -d /tmp/ktstr-marker* /tmp/ktstr-run-* /sys/fs/cgroup/ktstr-* /ktstr/.rehearsal-* 2>/dev/null; echo $$ > /tmp/ktstr-marker-$$; date +%s']
