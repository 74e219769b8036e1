import { parseArgs } from 'node:util'
import { KtstrError } from '../util/errors.js'
import { runGuest } from './run-guest.js'
import { VM_OPTIONS, vmRequestFrom } from './vm-options.js'

export const EXEC_USAGE = `usage: ktstr exec [--kernel K] [--backend qemu|kvm|auto] [--topology NnNlNcNt] [--memory MIB]
                  [--scheduler NAME|PATH] [--sched-args "..."] [--timeout S] [--timing]
                  [--include PATH]... [--env NAME=VALUE]... [--disk FILE[,ro][,iops=N][,bps=N]]...
                  [--nested-kvm] [--monitor] [--monitor-hz N|off] [--stall-ms MS|off] [--dump DIR] [--cold] -- CMD [ARGS...]
Boots a guest, runs CMD in it and exits with CMD's exit code (125 when ktstr itself failed).
--include (-i) copies a host file or directory into the guest at the same path; programs bring their libraries.
--disk attaches a host file as a virtio-blk disk (/dev/vda, /dev/vdb, …), optionally read-only or throttled.
--nested-kvm gives the guest AMD SVM so it can run KVM itself (used to test the kvm backend without hardware KVM).
--monitor prints the host monitor's per-CPU samples as a table at the end (--monitor-hz: samples per second, default 10).
--stall-ms fails the run when a sched_ext task waits that long without running, or an idle CPU leaves runnable tasks waiting (default 2000).
--cold boots the guest from scratch instead of restoring a snapshot of a booted guest of the same shape.
--dump writes a JSON dump (per-CPU samples, the scheduler's BPF maps and globals) into DIR when the run fails.`

export async function execCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...VM_OPTIONS, monitor: { type: 'boolean' }, dump: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.help) {
    process.stdout.write(`${EXEC_USAGE}\n`)
    return 0
  }
  if (positionals.length === 0) throw new KtstrError('exec needs a command after --, e.g. ktstr exec -- cat /proc/cpuinfo')
  const req = vmRequestFrom(values, { kind: 'exec', argv: positionals, tty: false })
  return runGuest(req, { forwardStdin: !process.stdin.isTTY, timing: values.timing === true, monitor: values.monitor === true, ...(values.dump && { dump: values.dump }) })
}
