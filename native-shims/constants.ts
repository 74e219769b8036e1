// Linux x86_64 values (glibc headers: fcntl.h, sys/mman.h, sys/eventfd.h, sys/mount.h,
// sys/reboot.h, signal.h, sys/socket.h, sys/ioctl.h, net/if.h). Checked against the C headers by
// test/native-shims/libc.test.ts.

// open(2)
export const O_RDONLY = 0
export const O_WRONLY = 0o1
export const O_RDWR = 0o2
export const O_CREAT = 0o100
export const O_EXCL = 0o200
export const O_NOCTTY = 0o400
export const O_TRUNC = 0o1000
export const O_APPEND = 0o2000
export const O_NONBLOCK = 0o4000
export const O_DSYNC = 0o10000
export const O_DIRECT = 0o40000
export const O_DIRECTORY = 0o200000
export const O_NOFOLLOW = 0o400000
export const O_CLOEXEC = 0o2000000
export const O_SYNC = 0o4010000

// fcntl(2): open file description locks and struct flock's l_type, l_whence
export const F_OFD_GETLK = 36
export const F_OFD_SETLK = 37
export const F_OFD_SETLKW = 38
export const F_RDLCK = 0
export const F_WRLCK = 1
export const F_UNLCK = 2
export const SEEK_SET = 0
// lseek(2) whence values that find a sparse file's data and holes (Linux 3.1)
export const SEEK_DATA = 3
export const SEEK_HOLE = 4

// mmap(2)
export const PROT_NONE = 0
export const PROT_READ = 1
export const PROT_WRITE = 2
export const PROT_EXEC = 4
export const MAP_SHARED = 0x01
export const MAP_PRIVATE = 0x02
export const MAP_SHARED_VALIDATE = 0x03
export const MAP_FIXED = 0x10
export const MAP_ANONYMOUS = 0x20
export const MAP_LOCKED = 0x2000
export const MAP_NORESERVE = 0x4000
export const MAP_POPULATE = 0x8000
export const MAP_HUGETLB = 0x40000
export const MAP_FIXED_NOREPLACE = 0x100000
/** `(void *)-1` as koffi returns it (an unsigned BigInt). */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn

// eventfd(2)
export const EFD_SEMAPHORE = 1
export const EFD_NONBLOCK = 0o4000
export const EFD_CLOEXEC = 0o2000000

// mount(2)
export const MS_RDONLY = 1
export const MS_NOSUID = 2
export const MS_NODEV = 4
export const MS_NOEXEC = 8
export const MS_SYNCHRONOUS = 16
export const MS_REMOUNT = 32
export const MS_MANDLOCK = 64
export const MS_DIRSYNC = 128
export const MS_NOATIME = 1024
export const MS_NODIRATIME = 2048
export const MS_BIND = 4096
export const MS_MOVE = 8192
export const MS_REC = 16384
export const MS_SILENT = 32768
export const MS_PRIVATE = 1 << 18
export const MS_SLAVE = 1 << 19
export const MS_SHARED = 1 << 20
export const MS_RELATIME = 1 << 21
export const MS_STRICTATIME = 1 << 24
export const MS_LAZYTIME = 1 << 25

// umount2(2)
export const MNT_FORCE = 1
export const MNT_DETACH = 2
export const MNT_EXPIRE = 4
export const UMOUNT_NOFOLLOW = 8

// socket(2)
export const AF_INET = 2
export const SOCK_DGRAM = 2
export const SOCK_CLOEXEC = 0o2000000

// netdevice(7): an interface's flags, read and set through struct ifreq
export const SIOCGIFFLAGS = 0x8913
export const SIOCSIFFLAGS = 0x8914
export const IFF_UP = 0x1
export const IFNAMSIZ = 16

// clock_settime(2)
export const CLOCK_REALTIME = 0

// reboot(2): glibc's RB_* are the LINUX_REBOOT_CMD_* magic numbers.
export const RB_AUTOBOOT = 0x01234567
export const RB_HALT_SYSTEM = 0xcdef0123
export const RB_ENABLE_CAD = 0x89abcdef
export const RB_DISABLE_CAD = 0
export const RB_POWER_OFF = 0x4321fedc

// signal(7)
export const SIGHUP = 1
export const SIGINT = 2
export const SIGQUIT = 3
export const SIGKILL = 9
export const SIGUSR1 = 10
export const SIGSEGV = 11
export const SIGUSR2 = 12
export const SIGPIPE = 13
export const SIGALRM = 14
export const SIGTERM = 15
export const SIGCHLD = 17
export const SIGCONT = 18
export const SIGSTOP = 19
export const SIG_DFL = 0n
export const SIG_IGN = 1n
