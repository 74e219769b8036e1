import { type ParseArgsConfig, parseArgs } from 'node:util'
import pc from 'picocolors'
import { BuildFailure, buildKernel } from '../kernel/build.js'
import { kernelsDir, listCachedKernels } from '../kernel/cache.js'
import { assertImportable, importKernel } from '../kernel/import.js'
import { createProgressDisplay, formatElapsed } from '../kernel/progress.js'
import { resolveKernel } from '../kernel/resolve.js'
import { listSchedulers } from '../kernel/schedulers.js'
import { isKtstrError, KtstrError } from '../util/errors.js'

export const KERNEL_USAGE = `usage: ktstr kernel <command>

  build [--source DIR|debian] [--force] [--jobs N]
        build a sched_ext guest kernel and the example schedulers into the cache
        (default source: Debian's linux-source-6.12; DIR must be a clean Linux >= 6.12 tree)
  import DIR
        copy a ready kernel folder (bzImage, config, scx/) into the cache
  list  show cached kernels; * marks the one used when neither --kernel nor KTSTR_KERNEL is given
  path [--kernel K]
        print the bzImage that would be booted`

/** `ktstr kernel …`; prints user errors itself and returns the exit status. */
export async function kernelCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  try {
    switch (sub) {
      case 'build':
        return await build(rest)
      case 'list':
        parse(rest, {})
        return list()
      case 'import': {
        const dir = rest[0]
        if (!dir || rest.length > 1) throw new KtstrError('usage: ktstr kernel import DIR (a folder holding bzImage, config, scx/)')
        assertImportable(dir)
        const r = importKernel(dir)
        process.stdout.write(`${r.imported ? 'imported' : 'already cached'}: ${r.key} (${r.kernel.bzImage})\n`)
        return 0
      }
      case 'path': {
        const { values } = parse(rest, { kernel: { type: 'string' } })
        const kernel = await resolveKernel(values.kernel)
        process.stdout.write(`${kernel.bzImage}\n`)
        return 0
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(`${KERNEL_USAGE}\n`)
        return sub === undefined ? 2 : 0
      default:
        throw new KtstrError(`unknown command \`ktstr kernel ${sub}\`; use build, import, list or path`)
    }
  } catch (e) {
    if (!isKtstrError(e)) throw e
    if (e instanceof BuildFailure && e.tail.length) {
      process.stderr.write(`${pc.dim(`--- last ${e.tail.length} lines of ${e.logPath} ---`)}\n${e.tail.join('\n')}\n`)
    }
    process.stderr.write(`${pc.red('ktstr:')} ${e.message}\n`)
    return 1
  }
}

function parse<const O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true } as const)
  } catch (e) {
    throw new KtstrError(`${(e as Error).message}; see \`ktstr kernel --help\``)
  }
}

async function build(args: string[]): Promise<number> {
  const { values } = parse(args, {
    source: { type: 'string', default: 'debian' },
    force: { type: 'boolean', default: false },
    jobs: { type: 'string' },
  })
  let jobs: number | undefined
  if (values.jobs !== undefined) {
    jobs = Number(values.jobs)
    if (!Number.isInteger(jobs) || jobs < 1) throw new KtstrError(`--jobs must be a positive integer, not ${JSON.stringify(values.jobs)}`)
  }
  const display = createProgressDisplay(process.stderr)
  const started = Date.now()
  try {
    const kernel = await buildKernel({
      source: values.source,
      force: values.force,
      ...(jobs ? { jobs } : {}),
      onProgress: (e) => display.onProgress(e),
    })
    display.stop()
    process.stderr.write(`ktstr: kernel ${kernel.label} ready in ${formatElapsed((Date.now() - started) / 1000)}\n`)
    process.stdout.write(`${kernel.bzImage}\n`)
    return 0
  } finally {
    display.stop()
  }
}

function list(): number {
  const entries = listCachedKernels()
  if (!entries.length) {
    process.stdout.write(`no kernels in ${kernelsDir()}; build one with \`ktstr kernel build\`\n`)
    return 0
  }
  const env = process.env.KTSTR_KERNEL
  const rows = entries.map((k, i) => [i === 0 && !env ? '*' : ' ', k.key, k.meta.version, formatDate(k.meta.createdAt), schedulerNames(k.dir, k.key).join(' ') || '-'])
  const head = [' ', 'KEY', 'VERSION', 'BUILT', 'SCHEDULERS']
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
  const line = (r: string[]) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')
  process.stdout.write(`${pc.bold(line(head))}\n${rows.map(line).join('\n')}\n`)
  if (env) process.stdout.write(`KTSTR_KERNEL=${env} is set and is used instead of the cache\n`)
  return 0
}

function schedulerNames(dir: string, key: string): string[] {
  return listSchedulers({ bzImage: '', dir, schedulersDir: `${dir}/scx`, config: new Map(), origin: 'cache', label: key })
}

function formatDate(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`
}
