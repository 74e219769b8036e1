import { describe, expect, it } from 'vitest'
import { formatCpuList } from '../../runtime/protocol/cpulist.js'
import { cpuCount, formatTopology, llcCpus, nodeCpus, parseTopology } from '../../runtime/protocol/topology.js'
import { nodeMemoryMib, topologyArgs } from '../../src/vm/qemu/topology-args.js'

describe('NnNlNcNt topology', () => {
  it('parses and counts', () => {
    const t = parseTopology('2n4l2c2t')
    expect(t).toEqual({ numaNodes: 2, llcs: 4, coresPerLlc: 2, threadsPerCore: 2 })
    expect(cpuCount(t)).toBe(16)
    expect(formatTopology(t)).toBe('2n4l2c2t')
    expect(llcCpus(t, 1)).toEqual([4, 5, 6, 7])
    expect(nodeCpus(t, 1)).toEqual([8, 9, 10, 11, 12, 13, 14, 15])
  })

  it.each([
    ['1n2l', /expected NnNlNcNt/],
    ['0n1l1c1t', /NUMA nodes must be at least 1/],
    ['1n0l1c1t', /LLCs must be at least 1/],
    ['2n3l1c1t', /3 LLCs cannot be spread evenly over 2 NUMA nodes/],
    ['1n1l1c4t', /at most 2 threads per core/],
    ['1n16l16c2t', /512 CPUs exceed the guest kernel's limit of 256/],
  ])('refuses %s with a clear message', (text, msg) => {
    expect(() => parseTopology(text)).toThrow(msg)
  })

  it('formats cpulists like the kernel', () => {
    expect(formatCpuList([0, 1, 2, 5, 7, 8])).toBe('0-2,5,7-8')
    expect(formatCpuList([3])).toBe('3')
    expect(formatCpuList([])).toBe('')
  })
})

describe('QEMU topology arguments', () => {
  it('models each LLC as a socket, single node without -numa (its RAM file is the machine memory-backend)', () => {
    expect(topologyArgs(parseTopology('1n2l2c1t'), 1024, ['/shm/r,0'])).toEqual([
      '-smp',
      'cpus=4,sockets=2,dies=1,cores=2,threads=1',
      '-m',
      '1024M',
      '-object',
      'memory-backend-file,id=ram-node0,size=1024M,mem-path=/shm/r,,0,share=on',
    ])
    expect(() => topologyArgs(parseTopology('2n2l2c1t'), 1024, ['/a'])).toThrow('2 NUMA nodes need 2 RAM files, got 1')
  })

  it('adds one shared memory-backend-file and -numa node per node with its CPUs', () => {
    const args = topologyArgs(parseTopology('2n2l2c2t'), 1025, ['/shm/r0', '/shm/r1'])
    expect(args.slice(0, 2)).toEqual(['-smp', 'cpus=8,sockets=2,dies=1,cores=2,threads=2'])
    expect(args.slice(4)).toEqual([
      '-object',
      'memory-backend-file,id=ram-node0,size=513M,mem-path=/shm/r0,share=on',
      '-numa',
      'node,nodeid=0,cpus=0-3,memdev=ram-node0',
      '-object',
      'memory-backend-file,id=ram-node1,size=512M,mem-path=/shm/r1,share=on',
      '-numa',
      'node,nodeid=1,cpus=4-7,memdev=ram-node1',
    ])
  })

  it('gives anonymous RAM (memory-backend-ram) when no RAM files are given: the monitor is off', () => {
    expect(topologyArgs(parseTopology('2n2l1c1t'), 1024).filter((a) => a.startsWith('memory-backend'))).toEqual([
      'memory-backend-ram,id=ram-node0,size=512M',
      'memory-backend-ram,id=ram-node1,size=512M',
    ])
  })

  it('splits memory exactly', () => {
    const parts = [0, 1, 2].map((n) => nodeMemoryMib(1000, 3, n))
    expect(parts).toEqual([334, 333, 333])
    expect(parts.reduce((a, b) => a + b)).toBe(1000)
  })
})
