#!/usr/bin/env node
/** The `ktstr` command. */
import pc from 'picocolors'
import { describeError, isKtstrError } from '../util/errors.js'
import { log } from '../util/log.js'
import { BootFailure } from '../vm/boot-failure.js'
import { benchGateCommand } from './bench-gate-command.js'
import { cacheCommand } from './cache-command.js'
import { doctorCommand } from './doctor-command.js'
import { EXEC_USAGE, execCommand } from './exec-command.js'
import { EXIT_KTSTR_FAILED, EXIT_USAGE } from './exit-codes.js'
import { kernelCommand } from './kernel-command.js'
import { SHELL_USAGE, shellCommand } from './shell-command.js'

const USAGE = `usage: ktstr <command> [options]

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
      return execCommand(rest)
    case 'shell':
      return shellCommand(rest)
    case 'kernel':
      return kernelCommand(rest)
    case 'cache':
      return cacheCommand(rest)
    case 'doctor':
      return doctorCommand()
    case 'bench-gate':
      return benchGateCommand(rest)
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`)
      return cmd === undefined ? EXIT_USAGE : 0
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
