/** The BPF map readers on a fake guest kernel (hand-built BTF, memory in a Buffer): listing, decoding every map kind, globals, writes and bad input. */
import { describe, expect, it } from 'vitest'
import { attachedScheduler, findBpfObjects, findMap, formatMap, listMaps, readGlobals, readMap, setGlobal, walkTasks, writeArrayElem } from '../../src/monitor/bpf/index.js'
import { readSchedulerState } from '../../src/monitor/dump-read.js'
import { readScxState } from '../../src/monitor/scx-state.js'
import { Scene } from './bpf-fake-scene.js'

function stat(cnt: bigint, cpu: number, busy: boolean, lvl: number): Buffer {
  const b = Buffer.alloc(16)
  b.writeBigUInt64LE(cnt, 0)
  b.writeInt32LE(cpu, 8)
  b[12] = busy ? 1 : 0
  b[13] = lvl
  return b
}

/** scx_qmap-like: globals, a struct array, a per-CPU array, a hash, a queue, a raw map, struct_ops + link, held by pid 100 (and a thread); pid 120 holds .bss too. */
function qmapScene(opts: { linked?: boolean; opsState?: number } = {}) {
  const s = new Scene()
  const { k, prog } = s
  const g = s.globals('scx_qmap', 10, { enq: 5n, disp: 3n, err: 0 })
  const common = { key: 4, btf: s.progBtfAddr, keyId: prog.ids.u32 }
  const stats = s.array({ ...common, name: 'stats', type: 'array', value: 16, max: 3, id: 13, valueId: prog.ids.stat }, [stat(1n, -1, true, 5), stat(2n, 1, false, 0)])
  // PERCPU_ARRAY: pptrs[i] + each CPU's offset.
  const pcpu = s.map({ ...common, name: 'cpu_ctx_stor', type: 'percpu_array', value: 8, max: 2, id: 14, valueId: prog.ids.u64 }, 272, 16)
  for (let i = 0; i < 2; i++) {
    const p = k.percpuAlloc(8)
    k.mem.writeBigUInt64LE(p, Number(pcpu + k.off('bpf_array', 'pptrs') - 0xffff_8880_0000_0000n) + i * 8)
    for (let c = 0; c < 2; c++) k.putBytes(p + k.percpuOffsets[c]!, Buffer.from(new BigUint64Array([BigInt(100 * i + c)]).buffer))
  }
  // HASH: two buckets; elements chained by hlist_nulls, each chain ending at an odd marker.
  const htab = s.map({ ...common, name: 'task_ctx', type: 'hash', value: 16, max: 8, id: 15, valueId: prog.ids.stat }, 320)
  const buckets = k.alloc(32)
  k.put(htab, 'bpf_htab', 'buckets', buckets)
  k.put(htab, 'bpf_htab', 'n_buckets', 2, 4)
  const elem = (key: number, value: Buffer, next: bigint) => {
    const e = k.alloc(24 + 8 + 16)
    k.put(e, 'hlist_nulls_node', 'next', next)
    k.putBytes(e + 24n, Buffer.from(new Uint32Array([key]).buffer))
    k.putBytes(e + 32n, value)
    return e
  }
  const e2 = elem(42, stat(9n, 0, false, 1), 1n)
  k.put(buckets, 'hlist_nulls_head', 'first', elem(7, stat(8n, 1, true, 2), e2))
  k.put(buckets + 16n, 'hlist_nulls_head', 'first', elem(3, stat(7n, 0, false, 0), 3n))
  const queue = s.map({ name: 'queue0', type: 'queue', key: 0, value: 4, max: 4096, id: 16 }, 272)
  const raw = s.array({ name: 'raw', type: 'array', key: 4, value: 4, max: 2, id: 17 }, [Buffer.from([1, 2, 3, 4])])
  const ops = s.structOps('qmap_ops', 18, 'qmap', opts.opsState ?? 3)
  const files = [0n, 0n, 0n, g.bss, g.data, g.rodata, stats, pcpu, htab, queue, raw, ops].map((m) => (m ? s.file('bpf-map', m) : 0n))
  if (opts.linked !== false) files.push(s.file('bpf_link', s.link(ops)))
  files.push(s.file('null', 0xffff_8880_dead_0000n))
  const fds = s.fdTable(files)
  const sched = s.task(100, 'scx_qmap', fds)
  s.threads(sched, [sched, s.task(101, 'scx_qmap', fds, 100)])
  const other = s.task(120, 'bpftool', s.fdTable([s.file('bpf-map', g.bss)]))
  s.linkTasks([s.task(2, 'kthreadd', 0n), sched, other])
  return { s, k, g, stats, sched, other }
}

describe('BPF maps read from guest memory', () => {
  it('lists every map held by a process once, by id, with type, sizes and the holding process', () => {
    const { k } = qmapScene()
    const maps = listMaps(k)
    expect(maps.map((m) => `${m.id} ${m.name} ${m.type} ${m.owner.pid}`)).toEqual([
      '10 scx_qmap.bss array 100',
      '11 scx_qmap.data array 100',
      '12 scx_qmap.rodata array 100',
      '13 stats array 100',
      '14 cpu_ctx_stor percpu_array 100',
      '15 task_ctx hash 100',
      '16 queue0 queue 100',
      '17 raw array 100',
      '18 qmap_ops struct_ops 100',
    ])
    expect(formatMap(maps[0]!)).toBe('10: array  name scx_qmap.bss  key 4B  value 24B  max_entries 1  flags 0x400  (pid 100 scx_qmap)')
    expect([...walkTasks(k, { threads: true })].map((t) => `${t.pid}/${t.tgid} ${t.comm}`)).toEqual([
      '0/0 swapper/0',
      '2/2 kthreadd',
      '100/100 scx_qmap',
      '101/100 scx_qmap',
      '120/120 bpftool',
    ])
  })

  it('decodes array, per-CPU array and hash values through the map BTF; raw bytes without BTF', () => {
    const { k } = qmapScene()
    const maps = listMaps(k)
    expect(readMap(k, findMap(maps, 'stats')).entries).toEqual([
      { key: 0, value: { cnt: 1, cpu: -1, busy: true, lvl: 5 } },
      { key: 1, value: { cnt: 2, cpu: 1, busy: false, lvl: 0 } },
      { key: 2, value: { cnt: 0, cpu: 0, busy: false, lvl: 0 } },
    ])
    expect(readMap(k, findMap(maps, 'cpu_ctx_stor')).entries).toEqual([
      { key: 0, value: [0, 1] },
      { key: 1, value: [100, 101] },
    ])
    const hash = readMap(k, findMap(maps, 'task_ctx')).entries
    expect(hash.map((e) => [e.key, (e.value as { cnt: number }).cnt])).toEqual([
      [7, 8],
      [42, 9],
      [3, 7],
    ])
    expect(readMap(k, findMap(maps, 'raw')).entries).toEqual([
      { key: 0, value: new Uint8Array([1, 2, 3, 4]) },
      { key: 1, value: new Uint8Array(4) },
    ])
    const capped = readMap(k, findMap(maps, 'stats'), { max: 1 })
    expect([capped.entries.length, capped.truncated]).toEqual([1, true])
  })

  it("reads a scheduler's globals by name and sets a .bss global", () => {
    const { k, g } = qmapScene()
    expect(readGlobals(k)).toEqual({ nr_enqueued: 5, nr_dispatched: 3, test_error_cnt: 0, dsq_id: 7, stall_every: 2, tag: 'qmap' })
    expect(readGlobals(k, { section: '.bss' })).toEqual({ nr_enqueued: 5, nr_dispatched: 3, test_error_cnt: 0 })
    setGlobal(k, 'test_error_cnt', 1)
    expect(k.get(g.bss + k.off('bpf_array', 'value') + 16n, 8)).toEqual(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]))
    setGlobal(k, 'dsq_id', 2n ** 63n)
    expect(readGlobals(k)).toMatchObject({ nr_enqueued: 5, test_error_cnt: 1, dsq_id: 2n ** 63n })
  })

  it('writes an array element from a partial object or exact bytes', () => {
    const { k } = qmapScene()
    const stats = findMap(listMaps(k), 'stats')
    writeArrayElem(k, stats, 1, { cnt: 50, lvl: 7 })
    writeArrayElem(k, stats, 2, stat(3n, -2, true, 1))
    expect(readMap(k, stats).entries.map((e) => e.value)).toEqual([
      { cnt: 1, cpu: -1, busy: true, lvl: 5 },
      { cnt: 50, cpu: 1, busy: false, lvl: 7 },
      { cnt: 3, cpu: -2, busy: true, lvl: 1 },
    ])
  })

  it('tells which sched_ext scheduler is attached: by its struct_ops link, or INUSE without one', () => {
    expect(attachedScheduler(qmapScene().k)).toMatchObject({ name: 'qmap', ops: 'sched_ext_ops', state: 'READY', attached: true, owner: { pid: 100, comm: 'scx_qmap' } })
    expect(attachedScheduler(qmapScene({ linked: false }).k)).toBeUndefined()
    expect(attachedScheduler(qmapScene({ linked: false, opsState: 1 }).k)).toMatchObject({ name: 'qmap', state: 'INUSE', attached: true })
  })

  it("gives the monitor the attached ops' name, and a dump the maps and globals within its time budget", () => {
    expect(readScxState(qmapScene().k)).toEqual({ state: 'attached', ops: 'qmap' })
    expect(readScxState(qmapScene({ linked: false }).k)).toEqual({ state: 'none' })
    // The link not installed yet (its loader blocked inside the attach), but the tasks are in sched_ext.
    const { k: unlinked, sched, other, s } = qmapScene({ linked: false })
    unlinked.put(sched, 'task_struct', 'scx.flags', (3 << 8) | 1, 4) // SCX_TASK_ENABLED, queued
    expect(readScxState(unlinked)).toEqual({ state: 'attached', ops: 'qmap' })
    unlinked.put(sched, 'task_struct', 'scx.flags', 1, 4) // SCX_TASK_NONE: queued on another class
    expect(readScxState(unlinked)).toEqual({ state: 'none' })
    unlinked.put(sched, 'task_struct', 'scx.flags', 2 << 8, 4) // SCX_TASK_READY
    expect(readScxState(unlinked)).toEqual({ state: 'attached', ops: 'qmap' })
    unlinked.put(other, 'task_struct', 'files', s.fdTable([s.file('bpf-map', s.structOps('simple_ops', 31, 'simple', 3))]))
    expect(() => readScxState(unlinked)).toThrow('sched_ext has a scheduler in, and 2 sched_ext struct_ops maps are loaded: which one is not known')
    const { k } = qmapScene()
    const snap = readSchedulerState(k)
    if (!Array.isArray(snap.maps)) throw new Error(snap.maps.notRead)
    const stats = snap.maps.find((m) => m.info.name === 'stats')
    expect(stats).toMatchObject({ info: { type: 'array', owner: 'scx_qmap[100]' }, truncated: false })
    expect(stats?.entries).toHaveLength(3)
    // Maps the dump cannot decode are listed without entries.
    expect(snap.maps.find((m) => m.info.type === 'struct_ops')).toEqual({ info: expect.objectContaining({ name: 'qmap_ops' }) })
    expect(snap.globals).toMatchObject({ bss: { nr_enqueued: 5, nr_dispatched: 3 }, rodata: { tag: 'qmap' } })
    // A budget already spent: the maps are still listed, their contents and the globals say why not.
    const late = readSchedulerState(k, -1)
    if (!Array.isArray(late.maps)) throw new Error(late.maps.notRead)
    expect(late.maps.find((m) => m.info.name === 'stats')).toEqual({ info: expect.objectContaining({ name: 'stats' }), error: "not read: the dump's -1 ms budget ran out" })
    expect(late.globals).toEqual({ error: "not read: the dump's -1 ms budget ran out" })
  })

  it("with two schedulers' globals, uses the attached one's, or the pid given, else says which there are", () => {
    for (const linked of [true, false]) {
      const { s, k, other } = qmapScene({ linked })
      const g2 = s.globals('scx_simple', 30, { enq: 77n, disp: 0n, err: 0 })
      k.put(other, 'task_struct', 'files', s.fdTable([s.file('bpf-map', g2.bss), s.file('bpf-map', g2.rodata)]))
      expect(findMap(listMaps(k), 'scx_simp.rodata').owner.pid).toBe(120)
      expect(readGlobals(k, { pid: 120 })).toEqual({ nr_enqueued: 77, nr_dispatched: 0, test_error_cnt: 0, stall_every: 2, tag: 'qmap' })
      if (linked) expect(readGlobals(k).nr_enqueued).toBe(5)
      else expect(() => readGlobals(k)).toThrow('several processes hold BPF globals and none is the attached scheduler: pid 100 (scx_qmap), pid 120 (bpftool); pass the pid')
    }
  })

  it('ends a torn or looping task list with what was read, and says it was cut short', () => {
    const { k, s, sched } = qmapScene()
    const ended = { complete: false }
    expect([...walkTasks(k, { threads: true, ended })].map((t) => t.pid)).toEqual([0, 2, 100, 101, 120])
    expect(ended.complete).toBe(true)
    expect(findBpfObjects(k).complete).toBe(true)
    k.put(sched + k.off('task_struct', 'tasks'), 'list_head', 'next', 0xffff_8880_7000_0000n) // unmapped
    expect([...walkTasks(k, { ended })].map((t) => t.pid)).toEqual([0, 2, 100])
    expect(ended.complete).toBe(false)
    k.put(sched + k.off('task_struct', 'tasks'), 'list_head', 'next', sched + k.off('task_struct', 'tasks')) // points at itself
    expect([...walkTasks(k, { ended })].map((t) => t.pid)).toEqual([0, 2, 100])
    expect(ended.complete).toBe(false)
    expect(listMaps(k).length).toBe(9)
    expect(findBpfObjects(k).complete).toBe(false)
    // Torn before the scheduler's process: its link is not seen, and that is not "none attached".
    const kthreadd = [...walkTasks(k)].find((t) => t.pid === 2)!.addr
    k.put(kthreadd + k.off('task_struct', 'tasks'), 'list_head', 'next', 0xffff_8880_7000_0000n)
    expect(() => readScxState(k)).toThrow('the guest changed its task list under every walk; no struct_ops link seen')
    k.put(s.init + 0n, 'task_struct', 'tasks.next', 0n)
    expect([...walkTasks(k, { ended })].map((t) => t.pid)).toEqual([0])
    expect(ended.complete).toBe(false)
  })
})

describe('BPF map bad input: one line naming the fix', () => {
  const { k } = qmapScene()
  const maps = listMaps(k)
  const cases: [string, () => unknown, string][] = [
    [
      'unknown map',
      () => findMap(maps, 'nope'),
      "no BPF map named 'nope': the guest's maps are scx_qmap.bss, scx_qmap.data, scx_qmap.rodata, stats, cpu_ctx_stor, task_ctx, queue0, raw, qmap_ops",
    ],
    [
      'a map kind not read',
      () => readMap(k, findMap(maps, 'queue0')),
      "BPF map 'queue0' is a queue map; ktstr reads array, percpu_array, hash, lru_hash, percpu_hash, lru_percpu_hash maps",
    ],
    [
      'bytes of the wrong size',
      () => writeArrayElem(k, findMap(maps, 'stats'), 0, new Uint8Array(8)),
      "BPF map 'stats': the value is 8 bytes, its values are 16; pass exactly 16 bytes",
    ],
    ['a member the struct lacks', () => writeArrayElem(k, findMap(maps, 'stats'), 0, { count: 1 }), "stats[0]: struct stat has no member 'count'; it has cnt, cpu, busy, lvl"],
    ['a string for an integer', () => writeArrayElem(k, findMap(maps, 'stats'), 0, { cnt: 'many' }), 'stats[0].cnt: expected an integer, got "many"; pass a number or a bigint'],
    ['a value out of range', () => writeArrayElem(k, findMap(maps, 'stats'), 0, { lvl: 8 }), 'stats[0].lvl: 8 does not fit a unsigned 3-bit integer (0 … 7)'],
    ['a number for a struct', () => writeArrayElem(k, findMap(maps, 'stats'), 0, 5), 'stats[0]: expected an object for struct stat, got 5'],
    ['an index past the end', () => writeArrayElem(k, findMap(maps, 'stats'), 3, {}), "BPF map 'stats': index 3 is out of range; it has 3 elements (0 … 2)"],
    ['a map without BTF', () => writeArrayElem(k, findMap(maps, 'raw'), 0, 5), "BPF map 'raw' has no BTF for its values; pass the value as a Uint8Array of exactly 4 bytes"],
    [
      'a write to .rodata',
      () => writeArrayElem(k, findMap(maps, 'scx_qmap.rodata'), 0, {}),
      "BPF map 'scx_qmap.rodata' is read-only (a frozen .rodata: the verifier may have inlined its values); write a .bss or .data global or another map",
    ],
    [
      'a .rodata global',
      () => setGlobal(k, 'stall_every', 1),
      "global 'stall_every' is in .rodata (scx_qmap.rodata), which is frozen: the verifier may have inlined it; set a .bss or .data global (nr_enqueued, nr_dispatched, test_error_cnt, dsq_id)",
    ],
    [
      'an unknown global',
      () => setGlobal(k, 'nr_queued', 1),
      "the scheduler (pid 100 scx_qmap) has no global 'nr_queued'; its .bss/.data globals are nr_enqueued, nr_dispatched, test_error_cnt, dsq_id",
    ],
    ['a write to a hash map', () => writeArrayElem(k, findMap(maps, 'task_ctx'), 0, {}), "BPF map 'task_ctx' is a hash map; ktstr writes elements of array maps only"],
    ['a pid without globals', () => readGlobals(k, { pid: 2 }), 'pid 2 holds no .bss/.data/.rodata maps; those that do: pid 100 (scx_qmap)'],
  ]
  it.each(cases)('%s', (_, fn, line) => {
    const writes = k.writes
    expect(fn).toThrow(line)
    try {
      fn()
    } catch (e) {
      expect((e as Error).name === 'KtstrError' || (e as Error).constructor.name.endsWith('Error')).toBe(true)
      expect((e as Error).message).toBe(line)
    }
    expect(k.writes).toBe(writes)
  })
})
