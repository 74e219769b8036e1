/**
 * A process's open files, from its fd table (task->files->fdt->fd[0 .. max_fds)), and what an
 * anonymous-inode file is: anon_inode_getfd(name, …) names the file's dentry after its class
 * ("bpf-map", "bpf_link", "bpf-prog") and keeps the object in file->private_data.
 */
import type { KernelView } from '../kernel-view.js'
import { cstr, f32, f64, isKernelPtr, off } from './kmem.js'

export interface OpenFile {
  fd: number
  /** The struct file's address. */
  file: bigint
}

/** Most fds looked at per process. */
const MAX_FDS = 65_536

/** Open files of the fd table `files` (a struct files_struct *); none when it is unreadable. */
export function* openFiles(view: KernelView, files: bigint): Generator<OpenFile> {
  if (!isKernelPtr(files)) return
  const fdt = f64(view, files, 'files_struct', 'fdt')
  if (!isKernelPtr(fdt)) return
  const max = Math.min(f32(view, fdt, 'fdtable', 'max_fds') ?? 0, MAX_FDS)
  const arr = f64(view, fdt, 'fdtable', 'fd')
  if (!isKernelPtr(arr)) return
  const chunk = 512
  for (let base = 0; base < max; base += chunk) {
    const n = Math.min(chunk, max - base)
    const b = view.read(arr + BigInt(base * 8), n * 8)
    if (!b) return
    for (let i = 0; i < n; i++) {
      const file = b.readBigUInt64LE(i * 8)
      if (isKernelPtr(file)) yield { fd: base + i, file }
    }
  }
}

/** The dentry name of `file` ("bpf-map" for a BPF map's fd), undefined when unreadable. */
export function fileName(view: KernelView, file: bigint): string | undefined {
  const dentry = f64(view, file + BigInt(off(view.btf, 'file', 'f_path')), 'path', 'dentry')
  if (!isKernelPtr(dentry)) return undefined
  const name = f64(view, dentry + BigInt(off(view.btf, 'dentry', 'd_name')), 'qstr', 'name')
  return isKernelPtr(name) ? cstr(view, name, 32) : undefined
}

/** file->private_data. */
export function filePrivate(view: KernelView, file: bigint): bigint | undefined {
  return f64(view, file, 'file', 'private_data')
}
