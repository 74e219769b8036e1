/**
 * The loopback interface up, for servers on 127.0.0.1 in tests: what `ip link set lo up` does, as
 * two ioctls on a socket (netdevice(7): SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP). PID 1 then
 * starts no process for it, which took ~0.1 s of every cold boot under TCG.
 */
import { AF_INET, IFF_UP, IFNAMSIZ, SIOCGIFFLAGS, SIOCSIFFLAGS, SOCK_CLOEXEC, SOCK_DGRAM } from '../../native-shims/constants.js'
import { close, ioctlPtr, socket } from '../../native-shims/libc.js'
import { say } from './say.js'

/** sizeof(struct ifreq) on x86-64: the name, then a 24-byte union whose ifr_flags is a short. */
const IFREQ_SIZE = 40

/** Sets IFF_UP on interface `name`; throws the failing call's error (a kernel without networking: EAFNOSUPPORT). */
export function interfaceUp(name: string): void {
  const bytes = Buffer.from(name)
  if (bytes.length >= IFNAMSIZ) throw new RangeError(`interface name too long: ${name}`)
  const fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC)
  try {
    const req = Buffer.alloc(IFREQ_SIZE)
    bytes.copy(req)
    ioctlPtr(fd, SIOCGIFFLAGS, req)
    req.writeInt16LE(req.readInt16LE(IFNAMSIZ) | IFF_UP, IFNAMSIZ)
    ioctlPtr(fd, SIOCSIFFLAGS, req)
  } finally {
    close(fd)
  }
}

/** `lo` up; a kernel without networking gets one warning line on the console, and the run goes on. */
export function loopbackUp(): void {
  try {
    interfaceUp('lo')
  } catch (e) {
    say(`warning: the loopback interface is not up: ${(e as Error).message}`)
  }
}
