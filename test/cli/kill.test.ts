/**
 * `ktstr exec` killed with SIGKILL, SIGTERM or SIGINT at each phase (image build, boot, before the
 * guest's hello, while its command runs, while it powers off): its VM is gone within 5 s, and so
 * is its run folder (a SIGKILLed host's folder goes at the next start's sweep). The three signals
 * of a phase run side by side, each with its own TMPDIR.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cliPath, guestSkipReason, runCli, strayQemus } from '../helpers/guest.js'
import { killAndCount, runDirs, slowPowerOff, waitFor } from '../helpers/host-death.js'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-kill-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const SPIN = ['sh', '-c', 'echo ready; while :; do :; done']
const SLOW_POWER_OFF = slowPowerOff()

interface Phase {
  args: (tmpdir: string) => string[]
  /** The host is in this phase. */
  reached(s: { tmpdir: string; stdout: string }): boolean
  /** Then wait this long before the signal. */
  settleMs?: number
}

const PHASES: Record<string, Phase> = {
  'image build': { args: () => ['exec', '--', ...SPIN], reached: ({ tmpdir }) => runDirs(tmpdir).length > 0 && strayQemus({ tmpdir }).length === 0 },
  boot: { args: () => ['exec', '--', ...SPIN], reached: ({ tmpdir }) => strayQemus({ tmpdir }).length > 0 && runDirs(tmpdir).length > 0 },
  // The kernel has written to the console (so the run folder is gone), the command has not started.
  'before the hello': {
    args: () => ['exec', '--', ...SPIN],
    reached: ({ tmpdir, stdout }) => strayQemus({ tmpdir }).length > 0 && runDirs(tmpdir).length === 0 && !stdout.includes('ready'),
  },
  'running (a command spinning for ever)': { args: () => ['exec', '--', ...SPIN], reached: ({ stdout }) => stdout.includes('ready') },
  'powering off (a slow final sync)': {
    args: (tmpdir) => {
      return ['exec', '--disk', SLOW_POWER_OFF.disk(tmpdir), '--', ...SLOW_POWER_OFF.command]
    },
    reached: ({ stdout }) => stdout.includes('wrote'),
    settleMs: 1000,
  },
}

const SIGNALS = ['SIGKILL', 'SIGTERM', 'SIGINT'] as const
const EXPECTED_EXIT: Record<(typeof SIGNALS)[number], string | number> = { SIGKILL: 'SIGKILL', SIGTERM: 143, SIGINT: 130 }

async function killAt(phase: Phase, signal: (typeof SIGNALS)[number]) {
  const tmpdir = fs.mkdtempSync(path.join(root, `${signal}-`))
  const child = spawn(process.execPath, [cliPath, ...phase.args(tmpdir)], { env: { ...process.env, TMPDIR: tmpdir }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b) => (stdout += b))
  child.stderr.on('data', (b) => (stderr += b))
  const reached = await waitFor(() => phase.reached({ tmpdir, stdout }) || child.exitCode !== null, 90_000)
  if (!reached || child.exitCode !== null) {
    child.kill('SIGKILL')
    throw new Error(`the phase was not reached (exit ${child.exitCode}); stdout ${JSON.stringify(stdout)} stderr ${stderr}`)
  }
  if (phase.settleMs) await new Promise((r) => setTimeout(r, phase.settleMs))
  const after = await killAndCount(child, signal, tmpdir)
  // A start that fails at once (no such kernel) still sweeps the folders of dead hosts first.
  const next = signal === 'SIGKILL' ? await runCli(['exec', '--kernel', '/nonexistent/bzImage', '--', 'true'], { env: { TMPDIR: tmpdir } }) : undefined
  return { signal, ...after, afterNextStart: runDirs(tmpdir), nextStartCode: next?.code, stderr }
}

describe.skipIf(guestSkipReason)('ktstr exec killed at any phase leaves no VM and no run folder', () => {
  for (const [name, phase] of Object.entries(PHASES)) {
    it(name, { timeout: 150_000 }, async () => {
      const results = await Promise.all(SIGNALS.map((s) => killAt(phase, s)))
      for (const r of results) {
        const what = `${r.signal}: ${JSON.stringify(r)}`
        expect(r.qemus, what).toEqual([])
        expect(r.exit, what).toBe(EXPECTED_EXIT[r.signal])
        if (r.signal === 'SIGKILL') {
          expect(r.nextStartCode, what).toBe(125)
          expect(r.afterNextStart, what).toEqual([])
        } else {
          expect(r.folders, what).toEqual([])
        }
        expect(r.stderr, what).not.toMatch(/internal error|\n\s+at /)
      }
    })
  }
})

describe.skipIf(guestSkipReason)("the command's exit ends the run", () => {
  it("sh -c 'sleep 1000 & echo hi' prints hi and ends when sh exits", { timeout: 120_000 }, async () => {
    const r = await runCli(['exec', '--timeout', '60', '--', 'sh', '-c', 'sleep 1000 & echo hi'])
    expect(r.stdout).toBe('hi\n')
    expect(r.code).toBe(0)
    expect(strayQemus(r)).toEqual([])
  })
})
