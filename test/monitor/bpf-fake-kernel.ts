/**
 * A fake guest kernel for the BPF map readers' unit tests: a hand-built kernel BTF with the
 * structs the readers use (own small layouts: the readers must take every offset from BTF), and a
 * KernelView over one Buffer of "kernel memory" with a bump allocator to lay out tasks, fd tables,
 * files and maps in it.
 */
import { Btf } from '../../src/monitor/btf/index.js'
import type { KernelView } from '../../src/monitor/kernel-view.js'
import { BtfBuilder } from './btf-blob.js'

type M = [string, number, number, number?]
const at = (members: M[]): [string, number, number, number?][] => members.map(([n, t, byte, bits]) => [n, t, byte * 8, bits])

export function kernelBtf() {
  const b = new BtfBuilder()
  const u32 = b.int('unsigned int', 4)
  const int = b.int('int', 4, 32, true)
  const u64 = b.int('long long unsigned int', 8)
  const char = b.int('char', 1)
  const bool = b.int('_Bool', 1, 8, false, true)
  const ptr = b.add('PTR', '', 0)
  const arr = (t: number, n: number) => b.add('ARRAY', '', 0, { extra: [t, u32, n] })
  const en = (name: string, vals: [string, number][]) => b.add('ENUM', name, 4, { vlen: vals.length, extra: vals.flatMap(([n, v]) => [b.str(n), v]) })
  const S = (name: string, size: number, m: M[], kind: 'STRUCT' | 'UNION' = 'STRUCT') => b.struct(name, size, at(m), kind)
  const mapType = en('bpf_map_type', [
    ['BPF_MAP_TYPE_UNSPEC', 0],
    ['BPF_MAP_TYPE_HASH', 1],
    ['BPF_MAP_TYPE_ARRAY', 2],
    ['BPF_MAP_TYPE_PERCPU_HASH', 5],
    ['BPF_MAP_TYPE_PERCPU_ARRAY', 6],
    ['BPF_MAP_TYPE_QUEUE', 22],
    ['BPF_MAP_TYPE_STRUCT_OPS', 26],
  ])
  const linkType = en('bpf_link_type', [
    ['BPF_LINK_TYPE_UNSPEC', 0],
    ['BPF_LINK_TYPE_STRUCT_OPS', 9],
  ])
  const opsState = en('bpf_struct_ops_state', [
    ['BPF_STRUCT_OPS_STATE_INIT', 0],
    ['BPF_STRUCT_OPS_STATE_INUSE', 1],
    ['BPF_STRUCT_OPS_STATE_TOBEFREE', 2],
    ['BPF_STRUCT_OPS_STATE_READY', 3],
  ])
  en('scx_ent_flags', [
    ['SCX_TASK_QUEUED', 1],
    ['SCX_TASK_STATE_SHIFT', 8],
    ['SCX_TASK_STATE_MASK', 768],
  ])
  const listHead = S('list_head', 16, [
    ['next', ptr, 0],
    ['prev', ptr, 8],
  ])
  const rq = S('rq', 64, [
    ['nr_running', u32, 0],
    ['idle', ptr, 16],
  ])
  S('task_struct', 256, [
    ['pid', int, 16],
    ['tgid', int, 20],
    ['tasks', listHead, 32],
    ['thread_node', listHead, 48],
    ['comm', arr(char, 16), 64],
    ['files', ptr, 80],
    ['signal', ptr, 88],
    ['scx', S('sched_ext_entity', 8, [['flags', u32, 4]]), 96],
  ])
  S('signal_struct', 64, [['thread_head', listHead, 8]])
  S('files_struct', 64, [['fdt', ptr, 8]])
  S('fdtable', 32, [
    ['max_fds', u32, 0],
    ['fd', ptr, 8],
  ])
  const path = S('path', 16, [
    ['mnt', ptr, 0],
    ['dentry', ptr, 8],
  ])
  S('file', 128, [
    ['private_data', ptr, 24],
    ['f_path', path, 48],
  ])
  const qstr = S('qstr', 16, [
    ['hash_len', u64, 0],
    ['name', ptr, 8],
  ])
  S('dentry', 96, [['d_name', qstr, 32]])
  const bpfMap = S('bpf_map', 256, [
    ['map_type', mapType, 8],
    ['key_size', u32, 12],
    ['value_size', u32, 16],
    ['max_entries', u32, 20],
    ['map_flags', u32, 32],
    ['id', u32, 36],
    ['btf_key_type_id', u32, 52],
    ['btf_value_type_id', u32, 56],
    ['btf_vmlinux_value_type_id', u32, 60],
    ['btf', ptr, 64],
    ['name', arr(char, 16), 80],
    ['frozen', bool, 120],
  ])
  // As in the kernel, `value` and `pptrs` are zero-length members of an anonymous union.
  const tail = S(
    '',
    0,
    [
      ['value', arr(char, 0), 0],
      ['pptrs', arr(ptr, 0), 0],
    ],
    'UNION',
  )
  S('bpf_array', 272, [
    ['map', bpfMap, 0],
    ['elem_size', u32, 256],
    ['', tail, 264],
  ])
  S('bpf_htab', 320, [
    ['map', bpfMap, 0],
    ['buckets', ptr, 256],
    ['n_buckets', u32, 264],
  ])
  const nullsHead = S('hlist_nulls_head', 8, [['first', ptr, 0]])
  const nullsNode = S('hlist_nulls_node', 16, [
    ['next', ptr, 0],
    ['pprev', ptr, 8],
  ])
  S('bucket', 16, [['head', nullsHead, 0]])
  S('htab_elem', 24, [
    ['hash_node', nullsNode, 0],
    ['hash', u32, 16],
    ['key', arr(char, 0), 24],
  ])
  S('btf', 64, [
    ['data', ptr, 0],
    ['data_size', u32, 8],
    ['base_btf', ptr, 16],
  ])
  const link = S('bpf_link', 32, [['type', linkType, 8]])
  S('bpf_struct_ops_link', 48, [
    ['link', link, 0],
    ['map', ptr, 32],
  ])
  const common = S('bpf_struct_ops_common_value', 8, [
    ['refcnt', u32, 0],
    ['state', opsState, 4],
  ])
  const kvalue = S('bpf_struct_ops_value', 64, [['common', common, 0]])
  S('bpf_struct_ops_map', 512, [
    ['map', bpfMap, 0],
    ['kvalue', kvalue, 320],
  ])
  const ops = S('sched_ext_ops', 160, [
    ['dispatch', ptr, 0],
    ['name', arr(char, 128), 16],
  ])
  const scxValue = S('bpf_struct_ops_sched_ext_ops', 224, [
    ['common', common, 0],
    ['data', ops, 64],
  ])
  const runqueues = b.add('VAR', 'runqueues', rq, { extra: [1] })
  b.add('DATASEC', '.data..percpu', 64, { vlen: 1, extra: [runqueues, 0, 64] })
  return { btf: Btf.parse(b.blob()), scxValue }
}

const BASE = 0xffff_8880_0000_0000n
const PERCPU_AREA = 4096

/** Guest "kernel memory": one Buffer at BASE, plus the fake kernel's BTF. */
export class FakeKernel implements KernelView {
  readonly mem = Buffer.alloc(1 << 20)
  readonly cpus = 2
  readonly percpuOffsets: bigint[]
  readonly btf: Btf
  readonly scxValue: number
  private next = 0x1000
  private percpuNext = 64
  private readonly percpuBase: bigint
  writes = 0

  constructor() {
    const k = kernelBtf()
    this.btf = k.btf
    this.scxValue = k.scxValue
    // The per-CPU "section" and each CPU's copy of it: CPU c's copy is at percpuBase + offsets[c].
    this.percpuBase = this.alloc(PERCPU_AREA)
    this.percpuOffsets = [this.alloc(PERCPU_AREA) - this.percpuBase, this.alloc(PERCPU_AREA) - this.percpuBase]
  }

  /** A per-CPU allocation: the __percpu pointer (CPU c's copy is at it + percpuOffsets[c]). */
  percpuAlloc(size: number): bigint {
    const p = this.percpuBase + BigInt(this.percpuNext)
    this.percpuNext += Math.ceil(size / 8) * 8
    return p
  }

  alloc(size: number, align = 8): bigint {
    this.next = Math.ceil(this.next / align) * align
    const va = BASE + BigInt(this.next)
    this.next += Math.max(size, 1)
    return va
  }

  private span(va: bigint, len: number): number | undefined {
    const o = va - BASE
    return o >= 0n && o + BigInt(len) <= BigInt(this.mem.length) ? Number(o) : undefined
  }

  read(va: bigint, len: number): Buffer | undefined {
    const o = this.span(va, len)
    return o === undefined ? undefined : Buffer.from(this.mem.subarray(o, o + len))
  }

  write(va: bigint, data: Uint8Array): boolean {
    const o = this.span(va, data.length)
    if (o === undefined) return false
    this.mem.set(data, o)
    this.writes++
    return true
  }

  percpuAddress(name: string, cpu: number): bigint {
    return this.percpuBase + this.percpuOffsets[cpu]! + BigInt(this.btf.percpuVar(name).offset)
  }

  off(struct: string, path: string): bigint {
    return BigInt(this.btf.member(struct, path).offset)
  }

  put(va: bigint, struct: string, path: string, v: number | bigint, size: 1 | 4 | 8 = 8): void {
    const o = this.span(va + this.off(struct, path), size)!
    if (size === 8) this.mem.writeBigUInt64LE(BigInt(v), o)
    else if (size === 4) this.mem.writeUInt32LE(Number(v), o)
    else this.mem[o] = Number(v)
  }

  putBytes(va: bigint, bytes: Uint8Array | string): void {
    this.mem.set(typeof bytes === 'string' ? Buffer.from(`${bytes}\0`) : bytes, this.span(va, bytes.length)!)
  }

  get(va: bigint, len: number): Buffer {
    return this.read(va, len)!
  }
}
