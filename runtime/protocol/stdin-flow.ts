/**
 * Flow control for a command's stdin. The host keeps at most STDIN_WINDOW_BYTES sent and not yet
 * acknowledged; the guest acknowledges bytes (a `stdin-ack` message) once the command's stdin pipe
 * has taken them. So each side holds at most a window of stdin however fast it comes and however
 * slowly the command reads, and the channel itself never backs up: a control message (a Ctrl-C)
 * is never stuck behind stdin.
 */
export const STDIN_WINDOW_BYTES = 1024 * 1024
