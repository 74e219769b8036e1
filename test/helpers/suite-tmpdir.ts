/**
 * Vitest globalSetup: the suite's temporary files go to one folder of its own (TMPDIR, which
 * os.tmpdir() and every CLI, VM and fixture run the tests start read), removed when the suite ends.
 * A test that forgets its folder, or is killed before its cleanup, then leaves nothing in /tmp.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export default function setup(): () => void {
  const before = process.env.TMPDIR
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-suite-'))
  process.env.TMPDIR = dir
  return () => {
    if (before === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = before
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
