// The outer guest: where this host has no usable /dev/kvm, `npm run test:kvm` (test/kvm/run.mjs) and
// the bench's kvm rows (test/bench/kvm-nested.mjs) run our VMM inside a QEMU-TCG guest given nested
// SVM (`ktstr exec --nested-kvm`). One set of outer-guest arguments, one probe, one way to run it.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/**
 * The outer guest's exit code when its probe failed. Inner guests without timer interrupts were
 * the nested setup's worst fault (every sleep and scheduler attach hangs; the TSC-rate cause is
 * mended in src/vm/qemu/args.ts, docs/tcg.md); each outer boot still first runs an inner `sleep 1`.
 */
export const BAD_TIMERS = 75
/** Outer boots tried at most, by a caller that boots again when one fails. */
export const OUTER_BOOTS = 3

/**
 * `node <argv>` boots the outer guest with `include` (host paths, seen at the same paths inside) and
 * the kernel folder, runs the probe, then `script` under `sh -c` with "$0" the guest's node and "$@"
 * `args`. The guest's kernel is also the inner guests' (KTSTR_KERNEL); it needs KVM and KVM_AMD.
 */
export function outerGuestArgv({ repo, kernel, include, memoryMib, timeoutS, env = {}, script, args = [] }) {
  const cli = path.join(repo, 'dist/src/cli/main.js')
  // Cold: it probes the outer guest's timers with a whole boot, and leaves no snapshot behind.
  const probe = `"$0" ${JSON.stringify(cli)} exec --backend kvm --cold --timeout 120 -- sleep 1 >/dev/null || exit ${BAD_TIMERS}`
  return [
    cli,
    'exec',
    '--kernel',
    kernel,
    '--nested-kvm',
    // The outer guest only carries the inner ones: no host monitor on it. Its stall watchdog misfired
    // there ("CPU 0's rq clock stood still 2.0 s with 3 runnable tasks" while its one TCG vCPU ran an
    // inner guest) and killed the whole run.
    '--monitor-hz',
    'off',
    // One guest of its shape per run, with hundreds of MiB of its own files: a snapshot would not pay.
    '--cold',
    // One vCPU: with several, QEMU's TCG round-robin between them breaks the inner guests' interrupt
    // masking (interrupts land while IF=0 and the inner kernels deadlock), and single-threaded TCG
    // gains nothing from a second one.
    '--topology',
    '1n1l1c1t',
    // 4 GiB unless told: with 10 GiB the inner guests lost their timer interrupts in 3 of 3 runs,
    // with 4 GiB the same tests passed (before the TSC-rate cause in docs/tcg.md was found).
    '--memory',
    String(memoryMib ?? 4096),
    '--timeout',
    String(timeoutS),
    ...[...include, path.resolve(kernel)].flatMap((p) => ['--include', p]),
    ...Object.entries({ KTSTR_KERNEL: path.resolve(kernel), KTSTR_NESTED: '1', ...env }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    '--',
    'sh',
    '-c',
    `${probe}; ${script}`,
    process.execPath,
    ...args,
  ]
}

/**
 * Runs `node <argv>` (an outer guest): its stderr, and its stdout unless `quietStdout`, pass through to
 * this process's as they come. Resolves with the exit status and all it printed on each stream.
 * With `silenceMs`, an outer guest that prints nothing for that long is taken as hung (its kernel
 * stuck under TCG's emulation of SVM: once, nothing for 24 min, past the suite's own test timeout):
 * it is stopped (SIGTERM, which ends ktstr's QEMU; SIGKILL 15 s later) and `silent` is set; the
 * last lines of its kernel's console (KTSTR_CONSOLE_LOG: an RCU stall report, if the kernel made
 * one) are printed first.
 */
export function runOuterGuest(argv, { env = process.env, quietStdout = false, cwd, silenceMs } = {}) {
  const consoleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktstr-outer-console-'))
  const consoleLog = path.join(consoleDir, 'console.log')
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { cwd, env: { ...env, KTSTR_CONSOLE_LOG: consoleLog }, stdio: ['ignore', 'pipe', 'pipe'] })
    let silent = false
    let watchdog
    const quiet = () => {
      silent = true
      process.stderr.write(`test:kvm: the outer guest printed nothing for ${(silenceMs / 1000).toFixed(silenceMs < 10_000 ? 1 : 0)} s; stopping it\n`)
      const tail = (fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : '').trimEnd().split('\n').slice(-30).join('\n')
      process.stderr.write(`test:kvm: the last lines of the outer guest's console:\n${tail || '(none)'}\n`)
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref()
    }
    const heard = () => {
      if (!silenceMs || silent) return
      clearTimeout(watchdog)
      watchdog = setTimeout(quiet, silenceMs)
    }
    heard()
    const tee = (stream, to, pass) => {
      const kept = []
      stream.on('data', (chunk) => {
        kept.push(chunk)
        heard()
        if (pass) to.write(chunk)
      })
      return kept
    }
    const out = tee(child.stdout, process.stdout, !quietStdout)
    const err = tee(child.stderr, process.stderr, true)
    const text = (chunks) => Buffer.concat(chunks).toString('utf8')
    child.on('close', (status, signal) => {
      clearTimeout(watchdog)
      fs.rmSync(consoleDir, { recursive: true, force: true })
      resolve({ status, signal, silent, stdout: text(out), stderr: text(err) })
    })
  })
}

/** The files test/kvm/progress-reporter.ts reported passed or skipped in `out`: not to run again. */
export const doneFiles = (out) => new Set([...out.matchAll(/^test:kvm: file (?:passed|skipped) (\S+)/gm)].map((m) => m[1]))
