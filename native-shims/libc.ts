// libc through koffi: the syscalls the guest init and the VMM need, as typed wrappers that throw
// Node-style errors. koffi is loaded on the first call, not at import (see koffi.ts).
import util from 'node:util'
import { MAP_FAILED, SEEK_SET } from './constants.js'
import { type KoffiModule, koffi } from './koffi.js'

/** Memory koffi can pass as a `void *`: JS memory (no copy) or a raw address. */
export type Memory = ArrayBufferView | bigint

/** An Error shaped like Node's own fs/os errors. `errno` is negative, as in Node (`-2` for ENOENT). */
export interface SyscallError extends Error {
  code: string
  errno: number
  syscall: string
  path?: string
}

// koffi functions are untyped; the exported wrappers below give them types.
// biome-ignore lint/suspicious/noExplicitAny: koffi's functions take and return whatever their C prototype says
type CFn = (...args: any[]) => any

interface Libc {
  k: KoffiModule
  open: CFn
  close: CFn
  read: CFn
  write: CFn
  lseek: CFn
  sendfile: CFn
  ioctlPtr: CFn
  ioctlVal: CFn
  fcntlPtr: CFn
  mmap: CFn
  munmap: CFn
  eventfd: CFn
  preadv: CFn
  pwritev: CFn
  fdatasync: CFn
  mount: CFn
  socket: CFn
  umount2: CFn
  reboot: CFn
  sync: CFn
  clockSettime: CFn
  tgkill: CFn
  getpid: CFn
  gettid: CFn
  schedGetaffinity: CFn
  schedSetaffinity: CFn
  signal: CFn
  siginterrupt: CFn
  sigrtmin: CFn
  exit: CFn
  strerror: CFn
  /** Address of a libc function that is harmless as a signal handler (see signal()). */
  noopHandler: bigint
}

let libc: Libc | undefined

// Bound on first use, so importing this module never needs koffi's native addon.
function L(): Libc {
  if (libc) return libc
  const k = koffi()
  const lib = k.load('libc.so.6')
  libc = {
    k,
    open: lib.func('int open(const char *path, int flags, uint32_t mode)'),
    close: lib.func('int close(int fd)'),
    read: lib.func('intptr_t read(int fd, void *buf, size_t count)'),
    write: lib.func('intptr_t write(int fd, const void *buf, size_t count)'),
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)'),
    sendfile: lib.func('intptr_t sendfile(int out_fd, int in_fd, _Inout_ int64_t *offset, size_t count)'),
    // ioctl is variadic in C; fixed third-argument shapes are ABI-safe on x86-64 and arm64 and
    // twice as fast through koffi. Value slots are `unsigned long`: koffi sign-extends `int`.
    ioctlPtr: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
    ioctlVal: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
    // Variadic like ioctl; a fixed pointer third argument is ABI-safe the same way.
    fcntlPtr: lib.func('fcntl', 'int', ['int', 'int', 'void *']),
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: lib.func('int munmap(void *addr, size_t length)'),
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    preadv: lib.func('intptr_t preadv(int fd, const void *iov, int iovcnt, int64_t offset)'),
    pwritev: lib.func('intptr_t pwritev(int fd, const void *iov, int iovcnt, int64_t offset)'),
    fdatasync: lib.func('int fdatasync(int fd)'),
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    // glibc declares `int cmd`; RB_HALT_SYSTEM (0xcdef0123) does not fit a JS int32, same register.
    reboot: lib.func('int reboot(uint32_t cmd)'),
    clockSettime: lib.func('int clock_settime(int clockid, const void *tp)'),
    sync: lib.func('void sync(void)'),
    tgkill: lib.func('int tgkill(int tgid, int tid, int sig)'),
    getpid: lib.func('int getpid(void)'),
    gettid: lib.func('int gettid(void)'),
    schedGetaffinity: lib.func('int sched_getaffinity(int pid, size_t cpusetsize, _Out_ uint8_t *mask)'),
    schedSetaffinity: lib.func('int sched_setaffinity(int pid, size_t cpusetsize, const uint8_t *mask)'),
    signal: lib.func('void *signal(int sig, void *handler)'),
    siginterrupt: lib.func('int siginterrupt(int sig, int flag)'),
    sigrtmin: lib.func('int __libc_current_sigrtmin(void)'),
    exit: lib.func('void _exit(int status)'),
    strerror: lib.func('const char *strerror(int errnum)'),
    noopHandler: lib.symbol('getpid') as bigint,
  }
  return libc
}

/** The symbolic name of a (positive) errno value, e.g. 2 → 'ENOENT'. */
export function errnoName(errno: number): string {
  const name = util.getSystemErrorMap().get(-errno)?.[0]
  if (name) return name
  for (const [n, v] of Object.entries(L().k.os.errno)) if (v === errno) return n
  return `E${errno}`
}

export function strerror(errno: number): string {
  return L().strerror(errno) as string
}

/** Builds the Node-style error for a failed call: "open /x: ENOENT (No such file or directory)". */
export function syscallError(errno: number, syscall: string, detail?: string, path?: string): SyscallError {
  const code = errnoName(errno)
  const where = detail ?? path
  const err = new Error(`${syscall}${where === undefined ? '' : ` ${where}`}: ${code} (${strerror(errno)})`)
  return Object.assign(err, { code, errno: -errno, syscall }, path === undefined ? {} : { path }) as SyscallError
}

// errno is read first, before anything else can run on this thread.
function check(ret: number, syscall: string, path?: string): number {
  if (ret === -1) throw syscallError(L().k.errno(), syscall, undefined, path)
  return ret
}

function lengthOf(buf: Memory, len: number | undefined, syscall: string): number {
  if (typeof buf === 'bigint') {
    if (len === undefined) throw new TypeError(`${syscall}: a length is required with a raw address`)
    return len
  }
  if (len === undefined) return buf.byteLength
  if (len > buf.byteLength) throw new RangeError(`${syscall}: length ${len} exceeds the buffer (${buf.byteLength} bytes)`)
  return len
}

export function open(path: string, flags: number, mode = 0): number {
  return check(L().open(path, flags, mode), 'open', path)
}

export function close(fd: number): void {
  check(L().close(fd), 'close')
}

/** Returns the number of bytes read (0 at end of file). `len` defaults to the whole buffer. */
export function read(fd: number, buf: Memory, len?: number): number {
  return check(L().read(fd, buf, lengthOf(buf, len, 'read')), 'read')
}

/** Returns the number of bytes written (may be short). `len` defaults to the whole buffer. */
export function write(fd: number, buf: Memory, len?: number): number {
  return check(L().write(fd, buf, lengthOf(buf, len, 'write')), 'write')
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`

/** ioctl with a pointer argument: JS memory (passed in place, no copy), a raw address, or NULL. */
export function ioctlPtr(fd: number, request: number, arg: Memory | null): number {
  const ret = L().ioctlPtr(fd, request, arg) as number
  if (ret === -1) throw syscallError(L().k.errno(), 'ioctl', hex(request))
  return ret
}

/** ioctl with an integer argument passed by value (an `unsigned long`; use a bigint above 2^53). */
export function ioctlVal(fd: number, request: number, value: number | bigint): number {
  const ret = L().ioctlVal(fd, request, value) as number
  if (ret === -1) throw syscallError(L().k.errno(), 'ioctl', hex(request))
  return ret
}

/** Like ioctlPtr, but returns `-errno` instead of throwing (for hot paths such as KVM_RUN → EINTR). */
export function tryIoctlPtr(fd: number, request: number, arg: Memory | null): number {
  const ret = L().ioctlPtr(fd, request, arg) as number
  return ret === -1 ? -L().k.errno() : ret
}

/** Like ioctlVal, but returns `-errno` instead of throwing. */
export function tryIoctlVal(fd: number, request: number, value: number | bigint): number {
  const ret = L().ioctlVal(fd, request, value) as number
  return ret === -1 ? -L().k.errno() : ret
}

/** struct flock's fields (F_RDLCK/F_WRLCK/F_UNLCK; byte range from the file's start; pid as the kernel reports it). */
export interface FileLock {
  type: number
  start: number
  len: number
  pid: number
}

// struct flock on x86_64/arm64: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
const FLOCK = { size: 32, type: 0, whence: 2, start: 8, len: 16, pid: 24 } as const

/**
 * fcntl(2) with a struct flock (F_OFD_SETLK, F_OFD_GETLK, …) over bytes [start, start+len).
 * Returns the struct as the kernel left it: for a GETLK, the first conflicting lock (pid -1 for
 * an OFD lock), or type F_UNLCK when none conflicts.
 */
export function fcntlLock(fd: number, cmd: number, lock: Pick<FileLock, 'type' | 'start' | 'len'>): FileLock {
  const b = Buffer.alloc(FLOCK.size)
  b.writeInt16LE(lock.type, FLOCK.type)
  b.writeInt16LE(SEEK_SET, FLOCK.whence)
  b.writeBigInt64LE(BigInt(lock.start), FLOCK.start)
  b.writeBigInt64LE(BigInt(lock.len), FLOCK.len)
  check(L().fcntlPtr(fd, cmd, b), 'fcntl')
  return {
    type: b.readInt16LE(FLOCK.type),
    start: Number(b.readBigInt64LE(FLOCK.start)),
    len: Number(b.readBigInt64LE(FLOCK.len)),
    pid: b.readInt32LE(FLOCK.pid),
  }
}

/** Returns the mapping's address. `addr` is a hint, or the exact place with MAP_FIXED. */
export function mmap(len: number | bigint, prot: number, flags: number, fd = -1, offset: number | bigint = 0, addr: bigint | null = null): bigint {
  const ret = L().mmap(addr, len, prot, flags, fd, offset) as bigint | null
  if (ret === MAP_FAILED) throw syscallError(L().k.errno(), 'mmap')
  return ret ?? 0n
}

export function munmap(addr: bigint, len: number | bigint): void {
  check(L().munmap(addr, len), 'munmap')
}

const MAX_VIEW = 2 ** 32

/**
 * An ArrayBuffer over native memory (no copy, does not own it: touching it after munmap is a
 * SIGSEGV). At most 4 GiB: a larger koffi.view aborts the process instead of throwing.
 */
export function view(addr: bigint, len: number): ArrayBuffer {
  if (!Number.isInteger(len) || len < 0 || len > MAX_VIEW) {
    throw new RangeError(`view: length ${len} must be an integer in [0, 4 GiB]; split larger regions`)
  }
  return L().k.view(addr, len)
}

export function eventfd(initval = 0, flags = 0): number {
  return check(L().eventfd(initval, flags), 'eventfd')
}

const EVENTFD_ONE = new BigUint64Array([1n])

/** Adds 1 to an eventfd's counter; on a non-blocking fd a full counter (EAGAIN) already means "signalled". */
export function signalEventfd(fd: number): void {
  try {
    write(fd, EVENTFD_ONE, 8)
  } catch (e) {
    if ((e as { code?: string }).code !== 'EAGAIN') throw e
  }
}

export interface Iovec {
  addr: bigint
  len: number
}

/** `struct iovec[]` (16 bytes each: base, length) for preadv/pwritev. */
export function packIovecs(iovecs: readonly Iovec[]): Buffer {
  const buf = Buffer.alloc(16 * iovecs.length)
  iovecs.forEach((v, i) => {
    buf.writeBigUInt64LE(v.addr, 16 * i)
    buf.writeBigUInt64LE(BigInt(v.len), 16 * i + 8)
  })
  return buf
}

function iovCount(iov: Buffer, iovcnt: number | undefined, syscall: string): number {
  const max = Math.floor(iov.byteLength / 16)
  if (iovcnt === undefined) return max
  if (iovcnt > max) throw new RangeError(`${syscall}: iovcnt ${iovcnt} exceeds the ${max} iovecs in the buffer`)
  return iovcnt
}

/** Vectored read at `offset` into the iovecs (packIovecs). Returns bytes read; may be short. */
export function preadv(fd: number, iov: Buffer, iovcnt: number | undefined, offset: number | bigint): number {
  return check(L().preadv(fd, iov, iovCount(iov, iovcnt, 'preadv'), offset), 'preadv')
}

/** Vectored write at `offset` from the iovecs (packIovecs). Returns bytes written; may be short. */
export function pwritev(fd: number, iov: Buffer, iovcnt: number | undefined, offset: number | bigint): number {
  return check(L().pwritev(fd, iov, iovCount(iov, iovcnt, 'pwritev'), offset), 'pwritev')
}

/**
 * lseek(2): the new offset. With SEEK_DATA/SEEK_HOLE it finds a sparse file's data and holes; no
 * data at or after `offset` is the error ENXIO.
 */
export function lseek(fd: number, offset: number, whence: number): number {
  return check(Number(L().lseek(fd, offset, whence)), 'lseek')
}

/**
 * sendfile(2): copies up to `count` bytes of `inFd` from `offset` to `outFd` at its file position,
 * inside the kernel (one copy, no user buffer). Returns the bytes copied (0 at `inFd`'s end).
 */
export function sendfile(outFd: number, inFd: number, offset: number, count: number): number {
  return check(Number(L().sendfile(outFd, inFd, [offset], count)), 'sendfile')
}

export function fdatasync(fd: number): void {
  check(L().fdatasync(fd), 'fdatasync')
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(L().mount(source, target, fstype, flags, data), 'mount', target)
}

export function umount2(target: string, flags = 0): void {
  check(L().umount2(target, flags), 'umount2', target)
}

/** socket(2); returns the descriptor. */
export function socket(domain: number, type: number, protocol = 0): number {
  return check(L().socket(domain, type, protocol), 'socket')
}

/** reboot(2) with an RB_* command; RB_POWER_OFF/RB_AUTOBOOT/RB_HALT_SYSTEM return only on failure. */
export function reboot(cmd: number): void {
  check(L().reboot(cmd), 'reboot')
}

/** clock_settime(2) to `ms` since the epoch (struct timespec: two 64-bit fields on x86-64). */
export function clockSettime(clockId: number, ms: number): void {
  const ts = Buffer.alloc(16)
  ts.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0)
  ts.writeBigInt64LE(BigInt(Math.round((ms % 1000) * 1e6)), 8)
  check(L().clockSettime(clockId, ts), 'clock_settime')
}

export function sync(): void {
  L().sync()
}

export function tgkill(tgid: number, tid: number, sig: number): void {
  check(L().tgkill(tgid, tid, sig), 'tgkill')
}

export function getpid(): number {
  return L().getpid() as number
}

/** The kernel thread id of the calling thread (differs per worker_thread). */
export function gettid(): number {
  return L().gettid() as number
}

/** Bytes of the CPU mask passed to sched_{get,set}affinity: glibc's cpu_set_t (1024 CPUs). */
const CPU_SET_BYTES = 128

/** The CPUs thread `tid` may run on (sched_getaffinity(2); 0 = the calling thread). */
export function schedGetaffinity(tid: number): number[] {
  const mask = Buffer.alloc(CPU_SET_BYTES)
  check(L().schedGetaffinity(tid, CPU_SET_BYTES, mask), 'sched_getaffinity')
  const cpus: number[] = []
  for (let cpu = 0; cpu < CPU_SET_BYTES * 8; cpu++) if (mask[cpu >> 3]! & (1 << (cpu & 7))) cpus.push(cpu)
  return cpus
}

/** Let thread `tid` run only on `cpus` (sched_setaffinity(2); 0 = the calling thread). */
export function schedSetaffinity(tid: number, cpus: readonly number[]): void {
  const mask = Buffer.alloc(CPU_SET_BYTES)
  for (const cpu of cpus) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= CPU_SET_BYTES * 8) throw new RangeError(`sched_setaffinity: CPU ${cpu} is outside 0-${CPU_SET_BYTES * 8 - 1}`)
    mask[cpu >> 3]! |= 1 << (cpu & 7)
  }
  check(L().schedSetaffinity(tid, CPU_SET_BYTES, mask), 'sched_setaffinity')
}

const SIG_ERR = 0xffff_ffff_ffff_ffffn

/**
 * Installs a C-level handler and returns the previous one. `'noop'` installs a harmless libc
 * function (getpid) as the handler: no JS runs, but a blocking syscall in the target thread is
 * interrupted (EINTR) once siginterrupt(sig, true) turned SA_RESTART off — the vCPU kick.
 * Or pass SIG_DFL / SIG_IGN, or any function address.
 */
export function signal(sig: number, handler: 'noop' | bigint): bigint {
  const h = handler === 'noop' ? L().noopHandler : handler
  const prev = L().signal(sig, h) as bigint | null
  if (prev === SIG_ERR) throw syscallError(L().k.errno(), 'signal')
  return prev ?? 0n
}

/** `true`: a signal interrupts blocking syscalls (EINTR) instead of restarting them. */
export function siginterrupt(sig: number, interrupt: boolean): void {
  check(L().siginterrupt(sig, interrupt ? 1 : 0), 'siginterrupt')
}

/** The first real-time signal available to applications (glibc reserves the lowest ones). */
export function sigrtmin(): number {
  return L().sigrtmin() as number
}

let interrupt: number | undefined

/**
 * The signal that interrupts another thread's blocking syscall (tgkill it to that thread): a
 * real-time signal with the do-nothing handler and no SA_RESTART, installed once per process
 * (handlers are process-wide). The vCPU kick and the blk worker's stop use it.
 */
export function interruptSignal(): number {
  if (interrupt === undefined) {
    const sig = sigrtmin() + 4
    signal(sig, 'noop')
    siginterrupt(sig, true)
    interrupt = sig
  }
  return interrupt
}

/**
 * Ends the process at once, without exit handlers. The one exit that works while a worker is
 * blocked in a native call (process.exit() then hangs).
 */
export function _exit(code: number): never {
  L().exit(code)
  throw new Error('unreachable: _exit returned')
}
