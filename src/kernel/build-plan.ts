import crypto from 'node:crypto'
import path from 'node:path'

/** A command of the build: what to run, where. */
export interface Command {
  cmd: string
  args: string[]
  cwd?: string
}

export interface MakePlan {
  /** Kernel source tree (read only: the build goes to `outDir`). */
  srcDir: string
  /** Kbuild output folder (`make O=`). */
  outDir: string
  /** Output folder of tools/sched_ext (its `O=`); the binaries land in `<scxOutDir>/build/bin`. */
  scxOutDir: string
  fragment: string
  /** pahole to use; passed to every make, config targets included (see required.ts). */
  pahole: string
  clang: string
  llvmStrip: string
  jobs: number
}

function make(plan: MakePlan, dir: string, ...args: string[]): Command {
  return { cmd: 'make', args: ['-C', dir, `O=${plan.outDir}`, `PAHOLE=${plan.pahole}`, ...args] }
}

/** tinyconfig, then the fragment merged on top, then olddefconfig to settle dependencies. */
export function configureCommands(plan: MakePlan): Command[] {
  return [
    make(plan, plan.srcDir, 'tinyconfig'),
    // merge_config.sh -m only merges (no make); it creates its temp file in cwd, so run it in outDir.
    {
      cmd: 'sh',
      args: [path.join(plan.srcDir, 'scripts/kconfig/merge_config.sh'), '-m', '-O', plan.outDir, path.join(plan.outDir, '.config'), plan.fragment],
      cwd: plan.outDir,
    },
    make(plan, plan.srcDir, 'olddefconfig'),
  ]
}

export function bzImageCommand(plan: MakePlan): Command {
  return make(plan, plan.srcDir, `-j${plan.jobs}`, 'bzImage')
}

/** The example schedulers; tools/sched_ext builds its own libbpf and bpftool, and needs clang >= 16. */
export function schedulersCommand(plan: MakePlan): Command {
  return {
    cmd: 'make',
    args: [
      '-C',
      path.join(plan.srcDir, 'tools/sched_ext'),
      `O=${plan.scxOutDir}`,
      `PAHOLE=${plan.pahole}`,
      `CLANG=${plan.clang}`,
      `LLVM_STRIP=${plan.llvmStrip}`,
      `VMLINUX_BTF=${path.join(plan.outDir, 'vmlinux')}`,
      `-j${plan.jobs}`,
    ],
  }
}

export function builtFiles(plan: MakePlan): { bzImage: string; config: string; schedulersDir: string } {
  return {
    bzImage: path.join(plan.outDir, 'arch/x86/boot/bzImage'),
    config: path.join(plan.outDir, '.config'),
    schedulersDir: path.join(plan.scxOutDir, 'build/bin'),
  }
}

/** `6.12.117` from the VERSION/PATCHLEVEL/SUBLEVEL/EXTRAVERSION lines of a kernel Makefile. */
export function kernelVersionFromMakefile(text: string): string | undefined {
  const field = (name: string) => new RegExp(`^${name}\\s*=[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim()
  const [v, p, s] = [field('VERSION'), field('PATCHLEVEL'), field('SUBLEVEL')]
  if (!v || !p) return undefined
  return `${v}.${p}${s ? `.${s}` : ''}${field('EXTRAVERSION') ?? ''}`
}

/** Upstream part of a Debian package version: `6.12.117-1~deb12u1` → `6.12.117`. */
export function upstreamVersion(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '')
}

export function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex')
}

/** Cache key `<version>-<source kind>-<hash of source identity and fragment>`, e.g. `6.12.117-debian-3f2a9c01d4`. */
export function buildKey(version: string, kind: 'debian' | 'local', identity: string, fragment: string): string {
  const safe = version.replace(/[^A-Za-z0-9._+-]/g, '_')
  return `${safe}-${kind}-${sha256(`${identity}\n${fragment}`).slice(0, 10)}`
}
