#!/usr/bin/env node
/** The `ktstr` command. */
import pc from 'picocolors'
import { describeError, isKtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { BootFailure } from '../vm/boot-failure.js'
import { EXIT_KTSTR_FAILED, EXIT_USAGE } from './exit-codes.js'

// Each command's modules are imported when it runs: a warm `ktstr exec` starts in a second, and
// the others' imports (the kernel build, the doctor, the cache) would be a fifth of that.
const usage = (EXEC_USAGE: string, SHELL_USAGE: string) => `usage: ktstr <command> [options]

commands:
  exec     boot a guest and run one command in it        (ktstr exec --help)
  shell    boot a guest with an interactive busybox shell (ktstr shell --help)
  kernel   build, list or locate guest kernels            (ktstr kernel build|list|path)
  cache    list or clean warm-start snapshots and base images (ktstr cache list|clean)
  doctor   check this machine and say what to install
  bench-gate BASE.json NEW.json [--max-drop PCT]
           exit 1 when a vitest bench --outputJson benchmark fell PCT % (10) below the baseline

Set KTSTR_LOG=debug for details, KTSTR_KERNEL to pick a kernel.

${EXEC_USAGE}

${SHELL_USAGE}`

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'exec':
      return (await import('./exec-command.js')).execCommand(rest)
    case 'shell':
      return (await import('./shell-command.js')).shellCommand(rest)
    case 'kernel':
      return (await import('./kernel-command.js')).kernelCommand(rest)
    case 'cache':
      return (await import('./cache-command.js')).cacheCommand(rest)
    case 'doctor':
      return (await import('./doctor-command.js')).doctorCommand()
    case 'bench-gate':
      return (await import('./bench-gate-command.js')).benchGateCommand(rest)
    case undefined:
    case 'help':
    case '--help':
    case '-h': {
      const [{ EXEC_USAGE }, { SHELL_USAGE }] = await Promise.all([import('./exec-command.js'), import('./shell-command.js')])
      process.stdout.write(`${usage(EXEC_USAGE, SHELL_USAGE)}\n`)
      return cmd === undefined ? EXIT_USAGE : 0
    }
    default:
      process.stderr.write(`ktstr: unknown command ${JSON.stringify(cmd)}; run ktstr --help\n`)
      return EXIT_USAGE
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    if (err instanceof BootFailure) {
      process.stderr.write(`ktstr: ${err.message}\n`)
      if (err.consoleTail.length) process.stderr.write(pc.dim(`--- last kernel console lines ---\n${err.consoleTail.join('\n')}\n`))
    } else if (isKtstrError(err)) {
      process.stderr.write(`ktstr: ${err.message}\n`)
    } else if (String((err as { code?: unknown } | null)?.code ?? '').startsWith('ERR_PARSE_ARGS')) {
      // Node's parseArgs explains over several lines; its first line names the problem. (String():
      // other errors may carry a numeric code.)
      const first = (err as Error).message.split('\n')[0]!.replace(/\.$/, '')
      process.stderr.write(`ktstr: ${first}; see ktstr --help\n`)
      return void (process.exitCode = EXIT_USAGE)
    } else {
      process.stderr.write(`ktstr: ${describeError(err)}\n`)
      if (log.isDebug) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
    }
    process.exitCode = EXIT_KTSTR_FAILED
  },
)
