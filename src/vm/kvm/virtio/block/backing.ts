// The storage behind a virtio-blk device. The device only ever talks to this interface, so a
// fault-injecting backing (faulty-backing.ts) drops in without touching it — the seam of
// cloud-hypervisor's DiskFile and QEMU's blkdebug.
import fs from 'node:fs'
import { O_CLOEXEC, O_RDONLY, O_RDWR } from '../../../../../native-shims/constants.js'
import type { Iovec } from '../../../../../native-shims/libc.js'
import * as libc from '../../../../../native-shims/libc.js'
import { KtstrError } from '../../../../util/errors.js'

export type { Iovec }

/**
 * Byte-addressed storage. Every transfer may be short (returns the bytes done) and may throw a
 * Node-style errno error (`code` 'EINTR', 'ENOSPC', 'EIO', …); the caller decides what to retry.
 * Iovecs are host pointers (for the device: straight into guest RAM, no copy).
 */
export interface Backing {
  /** Size in bytes. */
  readonly size: number
  readonly readOnly: boolean
  readAt(buf: Uint8Array, offset: number): number
  writeAt(buf: Uint8Array, offset: number): number
  /** fdatasync: everything written so far is durable once this returns. */
  syncData(): void
  preadv(iovecs: readonly Iovec[], offset: number): number
  pwritev(iovecs: readonly Iovec[], offset: number): number
  close(): void
}

/** Linux passes at most IOV_MAX iovecs per call; FileBacking transfers the first ones (short). */
export const IOV_MAX = 1024

// _IOR(0x12, 114, size_t) from <linux/fs.h>
const BLKGETSIZE64 = 0x80081272

export interface FileBackingOptions {
  readOnly?: boolean
}

/** A host file (or block device) through vectored syscalls (native-shims: preadv/pwritev/fdatasync). */
export class FileBacking implements Backing {
  private closed = false

  private constructor(
    readonly path: string,
    readonly fd: number,
    readonly size: number,
    readonly readOnly: boolean,
    /** close() closes the fd; false when it is borrowed (fromFd). */
    readonly owned: boolean,
  ) {}

  static open(path: string, opts: FileBackingOptions = {}): FileBacking {
    const readOnly = opts.readOnly ?? false
    const fd = openDiskFile(path, readOnly)
    try {
      return new FileBacking(path, fd, diskSize(path, fd), readOnly, true)
    } catch (e) {
      libc.close(fd)
      throw e
    }
  }

  /** Over a descriptor the caller keeps open (and closes): the VMM's, which holds the disk's lock. */
  static fromFd(path: string, fd: number, readOnly: boolean): FileBacking {
    return new FileBacking(path, fd, diskSize(path, fd), readOnly, false)
  }

  readAt(buf: Uint8Array, offset: number): number {
    return fs.readSync(this.fd, buf, 0, buf.length, offset)
  }

  writeAt(buf: Uint8Array, offset: number): number {
    return fs.writeSync(this.fd, buf, 0, buf.length, offset)
  }

  syncData(): void {
    libc.fdatasync(this.fd)
  }

  preadv(iovecs: readonly Iovec[], offset: number): number {
    if (iovecs.length === 0) return 0
    const iov = iovecs.length > IOV_MAX ? iovecs.slice(0, IOV_MAX) : iovecs
    return libc.preadv(this.fd, libc.packIovecs(iov), iov.length, offset)
  }

  pwritev(iovecs: readonly Iovec[], offset: number): number {
    if (iovecs.length === 0) return 0
    const iov = iovecs.length > IOV_MAX ? iovecs.slice(0, IOV_MAX) : iovecs
    return libc.pwritev(this.fd, libc.packIovecs(iov), iov.length, offset)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.owned) libc.close(this.fd)
  }
}

/** open(2) of a disk image, read-only or read-write, with one-line errors for the usual causes. */
export function openDiskFile(path: string, readOnly: boolean): number {
  try {
    return libc.open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'ENOENT') throw new KtstrError(`disk image ${path} does not exist; create it or fix the path`, { cause: e })
    if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') {
      throw new KtstrError(
        `disk image ${path} cannot be opened ${readOnly ? 'for reading' : 'read-write'} (${code}); fix its permissions${readOnly ? '' : ' or attach it read-only'}`,
        { cause: e },
      )
    }
    throw e
  }
}

/** Bytes of a regular file or block device. */
function diskSize(path: string, fd: number): number {
  const st = fs.fstatSync(fd)
  if (st.isBlockDevice()) {
    const out = new BigUint64Array(1)
    libc.ioctlPtr(fd, BLKGETSIZE64, out)
    return Number(out[0])
  }
  if (!st.isFile()) throw new KtstrError(`disk image ${path} is neither a regular file nor a block device`)
  return st.size
}
