/**
 * `vitest --inspect-brk` / `--inspect` with the ktstr pool: the guest's node inspector reached from
 * the host through the channel, driven as a debugger drives it (real Vitest CLI, one guest per run).
 * The debugger connects as early as it can, while the guest still boots, as an editor's attach does.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSkipReason, repoRoot, strayQemus } from '../helpers/guest.js'
import { type FixtureProject, fixtureProject, type VitestRun } from '../helpers/vitest-run.js'
import { CdpClient, generatedLine, type InspectorTarget, waitForTargets } from './inspector-client.js'

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'inspector')
const HOST = '127.0.0.1'

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, HOST, r))
  const { port } = server.address() as net.AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

type Script = { scriptId: string; url: string; sourceMapURL?: string }
type Frame = { callFrameId: string; location: { scriptId: string; lineNumber: number } }

describe.skipIf(guestSkipReason)('the guest inspector through the ktstr pool', () => {
  let project: FixtureProject
  // A run waiting for a debugger never ends by itself: each is killed (its guest with it) at the end.
  const abort = new AbortController()
  const runs: Promise<VitestRun>[] = []
  beforeAll(() => {
    project = fixtureProject(FIXTURE)
  })
  afterAll(async () => {
    abort.abort()
    await Promise.all(runs)
    expect(strayQemus(project)).toEqual([])
    project.remove()
  })

  /** Start Vitest on one fixture file and return its inspector's one target, or why there is none. */
  async function start(flag: string, file: string): Promise<{ run: Promise<VitestRun>; target: InspectorTarget; port: number }> {
    const port = await freePort()
    const run = project.vitest(['run', `${flag}=${HOST}:${port}`, '--no-file-parallelism', '--testTimeout=0'], [file], { signal: abort.signal })
    runs.push(run)
    const ended = run.then((r) => {
      throw new Error(`vitest ended (exit code ${r.code}) before the inspector answered:\n${r.out}`)
    })
    // The port opens when the file's worker starts; this request waits for the guest's inspector.
    const targets = await Promise.race([waitForTargets(HOST, port, 90_000), ended])
    expect(targets).toHaveLength(1)
    return { run, target: targets[0]!, port }
  }

  it('--inspect-brk: a breakpoint set on a line of the sched file stops there in the guest, then the file passes', { timeout: 150_000 }, async () => {
    const { run, target, port } = await start('--inspect-brk', 'debug')
    // Node builds these from the request's Host header: they name the host side, not the guest's port.
    expect(target.webSocketDebuggerUrl).toBe(`ws://${HOST}:${port}/${target.id}`)
    expect(target.devtoolsFrontendUrl).toContain(`ws=${HOST}:${port}/${target.id}`)

    const cdp = await CdpClient.connect(target.webSocketDebuggerUrl)
    const fileUrl = `file://${path.join(project.dir, 'debug.sched.test.ts')}`
    const scripts = new Map<string, Script>()
    cdp.on('event', (m) => m.method === 'Debugger.scriptParsed' && scripts.set((m.params as Script).scriptId, m.params as Script))
    const firstPause = cdp.next('Debugger.paused', 60_000)
    await cdp.send('Debugger.enable')
    await cdp.send('Runtime.runIfWaitingForDebugger')
    // --inspect-brk: Vitest stops in the test file before its first statement.
    const first = (await firstPause) as { callFrames: Frame[] }
    const script = scripts.get(first.callFrames[0]!.location.scriptId)
    expect(script?.url).toBe(fileUrl)

    // V8 runs Vite's transform of the file (comments gone); its inline source map places the line
    // marked in the file as written, as an editor does for a breakpoint set there.
    const map = JSON.parse(Buffer.from(script!.sourceMapURL!.replace(/^data:application\/json;base64,/, ''), 'base64').toString('utf8'))
    const marked = fs
      .readFileSync(path.join(FIXTURE, 'debug.sched.txt'), 'utf8')
      .split('\n')
      .findIndex((l) => l.includes('// BREAK HERE'))
    const line = generatedLine(map, marked)
    expect(line).toBeGreaterThan(0)
    const bp = (await cdp.send('Debugger.setBreakpointByUrl', { url: fileUrl, lineNumber: line })) as { breakpointId: string }

    const atBreakpoint = cdp.next('Debugger.paused', 60_000, (p) => (p.hitBreakpoints as string[] | undefined)?.includes(bp.breakpointId) === true)
    await cdp.send('Debugger.resume')
    const paused = (await atBreakpoint) as { callFrames: Frame[] }
    const frame = paused.callFrames[0]!
    expect(frame.location).toMatchObject({ scriptId: script!.scriptId, lineNumber: line })
    const { scriptSource } = (await cdp.send('Debugger.getScriptSource', { scriptId: script!.scriptId })) as { scriptSource: string }
    expect(scriptSource.split('\n')[line!]).toContain('const seen = `scheduler ')
    // Paused in the guest: the test's local holds what the guest's sched_ext says.
    const ops = (await cdp.send('Debugger.evaluateOnCallFrame', { callFrameId: frame.callFrameId, expression: 'ops' })) as { result: { value: string } }
    expect(ops.result.value).toBe('simple')

    await cdp.send('Debugger.resume')
    const r = await run
    cdp.close()
    expect(r.json.numPassedTests).toBe(1)
    expect(r.code).toBe(0)
  })

  it('--inspect: the file runs without waiting, and a debugger reaches it while it runs', { timeout: 150_000 }, async () => {
    const { run, target } = await start('--inspect', 'live')
    const cdp = await CdpClient.connect(target.webSocketDebuggerUrl)
    // The test polls for this mark: setting it proves the file was running, not held for a debugger.
    const mark = (await cdp.send('Runtime.evaluate', { expression: "globalThis.debuggerWasHere = 'parent pid ' + process.ppid" })) as { result: { value: string } }
    expect(mark.result.value).toBe('parent pid 1') // the guest's init started this node
    const r = await run
    cdp.close()
    expect(r.json.numPassedTests).toBe(1)
    expect(r.code).toBe(0)
  })
})
