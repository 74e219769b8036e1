/**
 * A guest that sends the pool what it must not trust, through the real pool worker and real Vitest
 * (fake guests: child node processes running the compiled guest worker, see pool-run.ts): a
 * malformed Vitest frame fails its file with one line — no crash of Vitest, no hang to the timeout
 * — and the snapshot bridge writes nothing outside the running file's snapshot files.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { built, byTitle, type RunResult, runFixture } from './pool-run.js'

describe.skipIf(!built)('a guest the pool does not trust', () => {
  let r: RunResult
  let outside: string
  beforeAll(async () => {
    r = await runFixture(['null-frame.sched.ts', 'bad-rpc.sched.ts', 'bad-fs.sched.ts', 'fs-escape.sched.ts'], { maxWorkers: 2 }, 'untrusted', (root) => {
      fs.mkdirSync(path.join(root, '.git', 'hooks'), { recursive: true })
      fs.writeFileSync(path.join(root, '.git', 'config'), '[core]\n')
      outside = fs.mkdtempSync(`${root}-outside-`)
      fs.symlinkSync(outside, path.join(root, 'linked'))
    })
  }, 180_000)
  afterAll(() => {
    if (!r) return
    fs.rmSync(r.root, { recursive: true, force: true })
    fs.rmSync(outside, { recursive: true, force: true })
  })

  const fileMessage = (file: string) => {
    const result = r.json.testResults.find((t) => t.name.endsWith(file))
    return [result?.message ?? '', ...(result?.assertionResults ?? []).flatMap((a) => a.failureMessages ?? [])].join('\n')
  }

  it('fails a file whose guest sends a serialized null, with one line, and Vitest carries on', () => {
    expect(fileMessage('null-frame.sched.ts')).toContain('guest sent a malformed Vitest message: expected an object, got null')
    expect(r.unhandled).toEqual([])
    expect(r.guests.running()).toBe(0)
    // Failed by the pool at once, not by the wall-clock limit (300 s) or Vitest's timeouts.
    expect(r.output).not.toMatch(/did not finish within|Timeout|timed out/)
  })

  it('fails a file whose guest sends a birpc call Vitest would choke on', () => {
    expect(fileMessage('bad-rpc.sched.ts')).toContain('guest sent a malformed Vitest message: a: expected Array, got "not an array"')
  })

  it('fails a file whose guest sends a malformed snapshot bridge request', () => {
    expect(fileMessage('bad-fs.sched.ts')).toContain('guest sent a malformed fs message: path: expected string, got 5')
  })

  it('refuses snapshot bridge writes outside the snapshot files, and still writes those', () => {
    const t = byTitle(r, 'fs-escape.sched.ts')
    expect(t['cannot write, read or remove outside its snapshot files']!.status).toBe('passed')
    expect(t['still writes its own snapshots']!.status).toBe('passed')
    expect(fs.existsSync(path.join(r.root, '.git', 'hooks', 'pre-commit'))).toBe(false)
    expect(fs.existsSync(path.join(path.dirname(r.root), 'escaped'))).toBe(false)
    expect(fs.readdirSync(outside)).toEqual([])
    expect(fs.readFileSync(path.join(r.root, '__snapshots__', 'fs-escape.sched.ts.snap'), 'utf8')).toContain('"written": "on the host"')
    expect(fs.readFileSync(path.join(r.root, 'fs-escape.sched.ts'), 'utf8')).toContain('toMatchInlineSnapshot(`"inline"`)')
    expect(fs.existsSync(path.join(r.root, 'fs-escape.sched.ts'))).toBe(true)
  })

  it('fails exactly the three files with bad frames', () => {
    expect(r.json.numFailedTestSuites).toBe(3)
  })
})
