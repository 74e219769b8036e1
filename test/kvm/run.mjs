#!/usr/bin/env node
// `npm run test:kvm`: the kvm-backend suite (vitest.kvm.config.ts) where /dev/kvm is usable;
// otherwise the same suite inside an outer QEMU-TCG guest started with nested SVM
// (`ktstr exec --nested-kvm`), so machines without KVM still run it for real.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { BAD_TIMERS, doneFiles, OUTER_BOOTS, outerGuestArgv, runOuterGuest } from './outer-guest.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const { probeKvm } = await import(path.join(repo, 'dist/src/vm/accel.js'))
const vitest = [path.join(repo, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'vitest.kvm.config.ts', '--root', repo]
const extra = process.argv.slice(2)

const kvm = probeKvm()
if (kvm.usable) {
  const r = spawnSync(process.execPath, [...vitest, ...extra], { cwd: repo, stdio: 'inherit' })
  process.exit(r.status ?? 1)
}

// The outer guest's kernel needs KVM and KVM_AMD (the project's kconfig fragment has both):
// KTSTR_KERNEL, else the kernel ktstr itself would use (the cache).
let kernel = process.env.KTSTR_KERNEL
if (!kernel) {
  const { resolveKernel } = await import(path.join(repo, 'dist/src/kernel/resolve.js'))
  kernel = await resolveKernel().then(
    (k) => k.dir,
    (e) => {
      console.error(`test:kvm: no usable /dev/kvm and no kernel for the outer guest (${e.message})`)
      process.exit(1)
    },
  )
}
console.log(`test:kvm: ${kvm.reason}; running the suite inside an outer QEMU-TCG guest with nested SVM`)
// The outer guest gets the project (sources for Vitest's transform, dist, node_modules) and the
// kernel folder at their host paths; the inner guests use the same kernel.
const include = ['package.json', 'tsconfig.json', 'vitest.kvm.config.ts', 'dist', 'node_modules', 'src', 'runtime', 'native-shims', 'plugin', 'test']
  .map((p) => path.join(repo, p))
  .filter((p) => fs.existsSync(p))
const outerArgv = (files) =>
  outerGuestArgv({
    repo,
    kernel,
    include,
    // KTSTR_KVM_OUTER_MIB=10240 lets memory.test.ts boot its 8 GiB inner guest.
    memoryMib: process.env.KTSTR_KVM_OUTER_MIB,
    // A whole run takes ~13 min here; a hang is caught sooner by SILENCE_MS.
    timeoutS: 2400,
    // Passed on to the inner ktstr: its log level, and KTSTR_BASE_DISK=1 (boot from the base image on a disk).
    // The outer guest's files live in its RAM: warm-start snapshots (~250 MiB each) are capped so a
    // suite of many guest shapes does not fill it (ENOSPC, then the outer kernel out of memory).
    env: {
      NO_COLOR: '1',
      KTSTR_SNAPSHOT_CACHE_MIB: '256',
      ...Object.fromEntries(['KTSTR_LOG', 'KTSTR_BASE_DISK', 'KTSTR_SNAPSHOT_CACHE_MIB'].filter((k) => process.env[k]).map((k) => [k, process.env[k]])),
    },
    // On a failure, what the outer kernel said of its clocks and RCU: where a lost timer would show.
    script: `"$0" "$@"; s=$?; [ $s = 0 ] || dmesg | grep -iE 'clocksource|tsc|rcu|timer' | tail -n 20 >&2; exit $s`,
    args: [...vitest, ...extra, ...files],
  })

const suiteFiles = fs
  .readdirSync(path.join(repo, 'test', 'kvm'))
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => `test/kvm/${f}`)
// Longer than any test or hook may take (vitest.kvm.config.ts: 300 s) before Vitest reports it.
const SILENCE_MS = 7 * 60_000

// A file that did not pass is run again in a fresh outer boot, at most twice: TCG's emulation of SVM
// has faults of its own (docs/tcg.md), and a fault of an outer boot can set in after its probe
// passed, or hang the outer guest as a whole. A file failing for a real cause fails every time; each
// retry is printed. Only for the whole suite: a run given its own filters reports as it is.
let files = suiteFiles
let r
for (let boot = 1; boot <= OUTER_BOOTS; boot++) {
  r = await runOuterGuest(outerArgv(extra.length ? [] : files), { cwd: repo, env: { ...process.env, KTSTR_KERNEL: kernel }, silenceMs: SILENCE_MS })
  const last = boot === OUTER_BOOTS ? '' : '; booting the outer guest again'
  if (r.status === 0) break
  if (r.status === BAD_TIMERS) {
    console.log(`test:kvm: the probe's inner guest did not return in outer guest boot ${boot} (lost timer interrupts are the known cause)${last}`)
    continue
  }
  const done = doneFiles(r.stdout)
  const left = files.filter((f) => !done.has(f))
  if (extra.length || !left.length) break
  files = left
  const how = r.silent ? 'hung' : 'ended with failures'
  if (last) console.log(`test:kvm: outer guest boot ${boot} ${how}; running ${left.join(', ')} again in a fresh outer guest`)
}
process.exit(r.status === 0 ? 0 : 1)
