/**
 * A real kernel panic from userspace without sysrq (not in the guest kernel): the OOM killer with
 * vm.panic_on_oom set, fed by a process that allocates until the guest's memory is gone.
 */
export const PANIC_SCRIPT = 'echo 1 > /proc/sys/vm/panic_on_oom; exec node -e "const k=[]; for (;;) k.push(Buffer.alloc(1 << 20, 1))"'
