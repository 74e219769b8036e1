/** A guest scene for the BPF map readers' unit tests: init_task, a scheduler process holding its maps and struct_ops link, and other processes. */

import { FakeKernel } from './bpf-fake-kernel.js'
import { BtfBuilder } from './btf-blob.js'

/** A scheduler program's BTF (standalone, as BPF_BTF_LOAD keeps it): a struct value type and its .bss/.data/.rodata DATASECs. */
export function progBtf() {
  const b = new BtfBuilder()
  const u32 = b.int('unsigned int', 4)
  const s32 = b.int('int', 4, 32, true)
  const u64 = b.int('long long unsigned int', 8)
  const char = b.int('char', 1)
  const bool = b.int('_Bool', 1, 8, false, true)
  const stat = b.struct('stat', 16, [
    ['cnt', u64, 0],
    ['cpu', s32, 64],
    ['busy', bool, 96, 0],
    ['lvl', u32, 104, 3],
  ])
  const v = (name: string, t: number) => b.add('VAR', name, t, { extra: [1] })
  const sec = (name: string, size: number, vars: [number, number, number][]) => b.add('DATASEC', name, size, { vlen: vars.length, extra: vars.flat() })
  const bss = sec('.bss', 24, [
    [v('nr_enqueued', u64), 0, 8],
    [v('nr_dispatched', u64), 8, 8],
    [v('test_error_cnt', u32), 16, 4],
  ])
  const data = sec('.data', 8, [[v('dsq_id', u64), 0, 8]])
  const name = b.add('ARRAY', '', 0, { extra: [char, u32, 8] })
  const rodata = sec('.rodata', 16, [
    [v('stall_every', u32), 0, 4],
    [v('tag', name), 8, 8],
  ])
  return { blob: b.blob(), ids: { u32, u64, stat, bss, data, rodata } }
}

export const TYPES = { hash: 1, array: 2, percpu_array: 6, queue: 22, struct_ops: 26 }
const MMAPABLE = 1024

export interface MapSpec {
  name: string
  type: keyof typeof TYPES
  key: number
  value: number
  max: number
  id: number
  btf?: bigint
  keyId?: number
  valueId?: number
  frozen?: boolean
  flags?: number
}

export class Scene {
  readonly k = new FakeKernel()
  readonly init: bigint
  private readonly tasks: bigint[] = []
  readonly prog = progBtf()
  readonly progBtfAddr: bigint

  /** Tasks given a signal_struct by threads(). */
  private readonly leaders = new Set<bigint>()

  constructor() {
    this.init = this.task(0, 'swapper/0', 0n)
    this.k.put(this.k.percpuAddress('runqueues', 0), 'rq', 'idle', this.init)
    const blob = this.k.alloc(this.prog.blob.length)
    this.k.putBytes(blob, this.prog.blob)
    this.progBtfAddr = this.k.alloc(64)
    this.k.put(this.progBtfAddr, 'btf', 'data', blob)
    this.k.put(this.progBtfAddr, 'btf', 'data_size', this.prog.blob.length, 4)
  }

  task(pid: number, comm: string, files: bigint, tgid = pid): bigint {
    const t = this.k.alloc(256)
    this.k.put(t, 'task_struct', 'pid', pid, 4)
    this.k.put(t, 'task_struct', 'tgid', tgid, 4)
    this.k.putBytes(t + this.k.off('task_struct', 'comm'), comm)
    this.k.put(t, 'task_struct', 'files', files)
    return t
  }

  /** Links init_task and `procs` on the tasks list (circular, through `tasks`); a proc given no threads() gets its own one-thread signal_struct, as every kernel task has. */
  linkTasks(procs: bigint[]): void {
    for (const p of [this.init, ...procs]) if (!this.leaders.has(p)) this.threads(p, [p])
    this.tasks.splice(0, this.tasks.length, this.init, ...procs)
    const node = (t: bigint) => t + this.k.off('task_struct', 'tasks')
    this.tasks.forEach((t, i) => this.k.put(node(t), 'list_head', 'next', node(this.tasks[(i + 1) % this.tasks.length]!)))
  }

  /** A signal_struct whose thread list holds `threads` (through `thread_node`). */
  threads(leader: bigint, threads: bigint[]): void {
    this.leaders.add(leader)
    const sig = this.k.alloc(64)
    this.k.put(leader, 'task_struct', 'signal', sig)
    const head = sig + this.k.off('signal_struct', 'thread_head')
    const nodes = [head, ...threads.map((t) => t + this.k.off('task_struct', 'thread_node'))]
    nodes.forEach((n, i) => this.k.put(n, 'list_head', 'next', nodes[(i + 1) % nodes.length]!))
  }

  /** A file named `name` (its dentry's) with private_data `priv`. */
  file(name: string, priv: bigint): bigint {
    const f = this.k.alloc(128)
    const d = this.k.alloc(96)
    const s = this.k.alloc(name.length + 1)
    this.k.putBytes(s, name)
    this.k.put(d + this.k.off('dentry', 'd_name'), 'qstr', 'name', s)
    this.k.put(f + this.k.off('file', 'f_path'), 'path', 'dentry', d)
    this.k.put(f, 'file', 'private_data', priv)
    return f
  }

  /** An fd table: fd i holds files[i] (0n: a closed fd). */
  fdTable(files: bigint[]): bigint {
    const fs = this.k.alloc(64)
    const fdt = this.k.alloc(32)
    const arr = this.k.alloc(files.length * 8)
    files.forEach((f, i) => this.k.mem.writeBigUInt64LE(f, Number(arr - 0xffff_8880_0000_0000n) + i * 8))
    this.k.put(fs, 'files_struct', 'fdt', fdt)
    this.k.put(fdt, 'fdtable', 'max_fds', files.length, 4)
    this.k.put(fdt, 'fdtable', 'fd', arr)
    return fs
  }

  /** A struct bpf_map (inside its bpf_array / bpf_htab / bpf_struct_ops_map) with room for `extra` bytes after `headSize`. */
  map(spec: MapSpec, headSize: number, extra = 0): bigint {
    const m = this.k.alloc(headSize + extra, 64)
    const put = (f: string, v: number | bigint, size: 1 | 4 | 8 = 4) => this.k.put(m, 'bpf_map', f, v, size)
    put('map_type', TYPES[spec.type])
    put('key_size', spec.key)
    put('value_size', spec.value)
    put('max_entries', spec.max)
    put('map_flags', spec.flags ?? 0)
    put('id', spec.id)
    put('btf', spec.btf ?? 0n, 8)
    put('btf_key_type_id', spec.keyId ?? 0)
    put('btf_value_type_id', spec.valueId ?? 0)
    put('frozen', spec.frozen ? 1 : 0, 1)
    this.k.putBytes(m + this.k.off('bpf_map', 'name'), spec.name)
    return m
  }

  /** An ARRAY map whose values are `values` (each value_size bytes). */
  array(spec: MapSpec, values: Uint8Array[] = []): bigint {
    const stride = Math.ceil(spec.value / 8) * 8
    const m = this.map(spec, 272, stride * spec.max)
    this.k.put(m, 'bpf_array', 'elem_size', stride, 4)
    values.forEach((v, i) => this.k.putBytes(m + this.k.off('bpf_array', 'value') + BigInt(i * stride), v))
    return m
  }

  /** A scheduler's globals maps on the program BTF; returns their addresses. */
  globals(prefix: string, firstId: number, bss: { enq: bigint; disp: bigint; err: number }) {
    const b = Buffer.alloc(24)
    b.writeBigUInt64LE(bss.enq, 0)
    b.writeBigUInt64LE(bss.disp, 8)
    b.writeUInt32LE(bss.err, 16)
    const ro = Buffer.alloc(16)
    ro.writeUInt32LE(2, 0)
    ro.write('qmap', 8)
    const common = { key: 4, max: 1, btf: this.progBtfAddr, keyId: this.prog.ids.u32, flags: MMAPABLE }
    // libbpf's internal map names: the object name cut so that the section fits in 15 characters.
    const name = (sec: string) => prefix.slice(0, 15 - sec.length) + sec
    return {
      bss: this.array({ ...common, name: name('.bss'), type: 'array', value: 24, id: firstId, valueId: this.prog.ids.bss }, [b]),
      data: this.array({ ...common, name: name('.data'), type: 'array', value: 8, id: firstId + 1, valueId: this.prog.ids.data }, [Buffer.from([7, 0, 0, 0, 0, 0, 0, 0])]),
      rodata: this.array({ ...common, name: name('.rodata'), type: 'array', value: 16, id: firstId + 2, valueId: this.prog.ids.rodata, frozen: true }, [ro]),
    }
  }

  /** A sched_ext struct_ops map named `name` whose ops are called `opsName`, in `state`. */
  structOps(name: string, id: number, opsName: string, state: number): bigint {
    const m = this.map({ name, type: 'struct_ops', key: 4, value: 224, max: 1, id }, 512, 224)
    this.k.put(m, 'bpf_map', 'btf_vmlinux_value_type_id', this.k.scxValue, 4)
    const kvalue = m + this.k.off('bpf_struct_ops_map', 'kvalue')
    this.k.put(kvalue, 'bpf_struct_ops_sched_ext_ops', 'common.state', state, 4)
    this.k.putBytes(kvalue + this.k.off('bpf_struct_ops_sched_ext_ops', 'data.name'), opsName)
    return m
  }

  /** A struct_ops bpf_link holding `map`. */
  link(map: bigint): bigint {
    const l = this.k.alloc(48)
    this.k.put(l, 'bpf_link', 'type', 9, 4)
    this.k.put(l, 'bpf_struct_ops_link', 'map', map)
    return l
  }
}
