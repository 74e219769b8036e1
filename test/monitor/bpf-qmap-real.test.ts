/**
 * The BPF map readers on a real QEMU guest running scx_qmap, read by the host from guest RAM
 * without the guest's help (one boot): its maps are listed by name and type, its .bss counters
 * grow while spinners run, and setting .bss test_error_cnt to 1 makes scx_qmap's next enqueue
 * call scx_bpf_error("test triggering error"): the session ends with sched_ext's reason.
 */
import { describe, expect, it } from 'vitest'
import { StreamId } from '../../runtime/protocol/index.js'
import { attachedScheduler, BpfMapError, findBpfObjects, findMap, formatMap, readGlobals, readMap, setGlobal } from '../../src/monitor/bpf/index.js'
import { log } from '../../src/util/log.js'
import { bootGuest } from '../../src/vm/boot.js'
import { describeOutcome } from '../../src/vm/outcome.js'
import { guestSkipReason } from '../helpers/guest.js'

// The guest's init runs the command once scx_qmap is attached: `ready` says so to the host.
const SPINNERS = 'for i in 1 2 3 4; do (while :; do :; done) & done; echo ready; sleep 600'

describe.skipIf(guestSkipReason)("scx_qmap's BPF maps read and written by the host", () => {
  it('lists its maps, sees its .bss counters grow, and makes it exit through test_error_cnt', { timeout: 300_000 }, async () => {
    const session = await bootGuest({
      backend: 'qemu',
      topology: '1n1l2c1t',
      memoryMib: 512,
      scheduler: 'scx_qmap',
      stallMs: 'off',
      monitorHz: 2,
      timeoutS: 240,
      mode: { kind: 'exec', argv: ['sh', '-c', SPINNERS], tty: false },
    })
    try {
      await new Promise<void>((resolve, reject) => {
        let out = ''
        session.channel.on('data', (stream, chunk) => {
          out += stream === StreamId.Stdout ? chunk : ''
          if (out.includes('ready\n')) resolve()
        })
        void session.done.then((o) => reject(new Error(`guest ended before the spinners ran: ${describeOutcome(o)}`)))
      })
      const status = await session.monitor
      if (!status.on) throw new Error(`monitor off: ${status.reason}`)
      const view = status.monitor.view
      const t0 = performance.now()
      const objs = findBpfObjects(view)
      const listMs = performance.now() - t0
      const maps = objs.maps
      log.debug(`scx_qmap's maps as the host lists them (${listMs.toFixed(1)} ms):\n${maps.map(formatMap).join('\n')}`)
      // The maps scx_qmap.bpf.c declares, plus libbpf's for its globals and the .data.uei_dump section.
      expect(maps.map((m) => `${m.name} ${m.type}`)).toEqual([
        'queue0 queue',
        'queue1 queue',
        'queue2 queue',
        'queue3 queue',
        'queue4 queue',
        'queue_arr array_of_maps',
        'dump_store queue',
        'task_ctx_stor task_storage',
        'cpu_ctx_stor percpu_array',
        'monitor_timer array',
        'scx_qmap.rodata array',
        'scx_qmap.bss array',
        '.data.uei_dump array',
        'scx_qmap.data array',
        'qmap_ops struct_ops',
      ])
      expect(maps.every((m) => m.owner.comm === 'scx_qmap')).toBe(true)
      expect(attachedScheduler(view, objs)).toMatchObject({ name: 'qmap', ops: 'sched_ext_ops', attached: true })

      const cpuCtx = readMap(view, findMap(maps, 'cpu_ctx_stor'))
      expect(cpuCtx.entries).toHaveLength(1)
      expect(cpuCtx.entries[0]!.value).toHaveLength(view.cpus)
      // struct cpu_ctx of scx_qmap.bpf.c, one per CPU, decoded through the map's BTF.
      for (const v of cpuCtx.entries[0]!.value as object[]) expect(Object.keys(v)).toEqual(['dsp_idx', 'dsp_cnt', 'avg_weight', 'cpuperf_target'])

      const first = readGlobals(view, { objs, section: '.bss' })
      await new Promise((r) => setTimeout(r, 2000))
      const second = readGlobals(view, { objs, section: '.bss' })
      log.debug(`nr_enqueued ${first.nr_enqueued} → ${second.nr_enqueued}, nr_dispatched ${first.nr_dispatched} → ${second.nr_dispatched}`)
      expect(second.nr_enqueued).toBeGreaterThan(first.nr_enqueued as number)
      expect(second.nr_dispatched).toBeGreaterThan(first.nr_dispatched as number)
      expect(second.test_error_cnt).toBe(0)

      const rodata = Object.keys(readGlobals(view, { objs, section: '.rodata' }))
      expect(rodata).toContain('slice_ns')
      expect(() => setGlobal(view, 'slice_ns', 1, { objs })).toThrow(BpfMapError)
      expect(() => findMap(maps, 'queue9')).toThrow(/^no BPF map named 'queue9': the guest's maps are .*queue0/)

      setGlobal(view, 'test_error_cnt', 1, { objs })
      const outcome = await session.done
      log.debug(`after test_error_cnt = 1: ${describeOutcome(outcome)}`)
      expect(outcome.kind).toBe('scheduler-exited')
      expect(describeOutcome(outcome)).toMatch(/kernel: sched_ext: BPF scheduler "qmap" disabled \(scx_bpf_error\): test triggering error\)$/)
    } finally {
      await session.stop()
    }
  })
})
