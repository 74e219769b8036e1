// Parse and validate one descriptor chain into a typed virtio-blk request (virtio 1.2 §5.2.6),
// before any I/O. Everything here is guest-controlled, so nothing throws: a bad chain becomes a
// rejection that says where (if anywhere) its status byte can be written.
import type { GuestRam } from '../../../memory/guest-memory.js'
import { type Descriptor, type DescriptorChain, isWritable, VIRTQ_DESC_F_INDIRECT } from '../queue.js'
import {
  BLK_HEADER_SIZE,
  SECTOR_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from './constants.js'

/** A guest buffer of a data descriptor. */
export interface Segment {
  readonly gpa: number
  readonly len: number
}

interface Common {
  /** Head index of the chain, to return it on the used ring. */
  readonly head: number
  /** Guest address of the status byte. */
  readonly status: number
}

/** A read ('in') or write ('out') of `len` bytes at byte `offset` (= sector * 512). */
export interface TransferRequest extends Common {
  readonly type: 'in' | 'out'
  readonly sector: bigint
  readonly offset: number
  readonly len: number
  readonly segments: readonly Segment[]
}

export interface FlushRequest extends Common {
  readonly type: 'flush'
}

export interface GetIdRequest extends Common {
  readonly type: 'get-id'
  readonly len: number
  readonly segments: readonly Segment[]
}

export type BlkRequest = TransferRequest | FlushRequest | GetIdRequest

export interface Rejection {
  readonly head: number
  /** Where S_IOERR/S_UNSUPP goes; undefined when the chain has no usable status byte (used len 0). */
  readonly status: number | undefined
  readonly code: typeof VIRTIO_BLK_S_IOERR | typeof VIRTIO_BLK_S_UNSUPP
  readonly reason: string
}

export type ParseResult = { readonly ok: true; readonly request: BlkRequest } | { readonly ok: false; readonly rejection: Rejection }

/** What validation checks a request against. */
export interface DiskLimits {
  /** Capacity in 512-byte sectors. */
  readonly capacity: bigint
  readonly readOnly: boolean
  /** Most data descriptors per request (config seg_max). */
  readonly segMax: number
  /** Largest data descriptor in bytes (config size_max). */
  readonly sizeMax: number
}

const usableStatus = (d: Descriptor) => isWritable(d) && d.len >= 1 && d.inRam && (d.flags & VIRTQ_DESC_F_INDIRECT) === 0

export function parseRequest(ram: GuestRam, chain: DescriptorChain, disk: DiskLimits): ParseResult {
  const { head, descriptors } = chain
  const reject = (status: number | undefined, reason: string, code: Rejection['code'] = VIRTIO_BLK_S_IOERR): ParseResult => ({
    ok: false,
    rejection: { head, status, code, reason },
  })

  // The status byte is in the chain's last descriptor, so a chain that did not end properly has none.
  const last = descriptors[descriptors.length - 1]
  if (!chain.complete || !last) return reject(undefined, chain.malformed ?? 'empty descriptor chain')
  if (!usableStatus(last)) return reject(undefined, `status descriptor ${last.index} is not a device-writable, in-RAM buffer of at least 1 byte`)
  const status = last.addr
  if (chain.malformed) return reject(status, chain.malformed)
  if (last.len !== 1) return reject(status, `status descriptor ${last.index} is ${last.len} bytes, not 1`)
  if (descriptors.length < 2) return reject(status, 'chain has no request header')

  const hdr = descriptors[0]!
  if (isWritable(hdr)) return reject(status, `header descriptor ${hdr.index} is device-writable`)
  if (hdr.len !== BLK_HEADER_SIZE) return reject(status, `header descriptor ${hdr.index} is ${hdr.len} bytes, not ${BLK_HEADER_SIZE}`)
  const type = ram.readU32(hdr.addr)
  const sector = ram.readU64(hdr.addr + 8)

  const data = descriptors.slice(1, -1)
  const dataShape = (writable: boolean): string | undefined => {
    if (data.length > disk.segMax) return `${data.length} data descriptors exceed seg_max ${disk.segMax}`
    for (const d of data) {
      if (isWritable(d) !== writable) return `data descriptor ${d.index} is ${writable ? 'not ' : ''}device-writable`
      if (d.len === 0) return `data descriptor ${d.index} is empty`
      if (d.len > disk.sizeMax) return `data descriptor ${d.index} is ${d.len} bytes, over size_max ${disk.sizeMax}`
    }
    return undefined
  }
  const segments = () => data.map((d) => ({ gpa: d.addr, len: d.len }))
  const dataLen = data.reduce((s, d) => s + d.len, 0)

  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const out = type === VIRTIO_BLK_T_OUT
      if (data.length === 0) return reject(status, `${out ? 'write' : 'read'} without data descriptors`)
      const bad = dataShape(!out)
      if (bad) return reject(status, bad)
      if (dataLen % SECTOR_SIZE !== 0) return reject(status, `data length ${dataLen} is not a multiple of ${SECTOR_SIZE}`)
      const end = sector + BigInt(dataLen / SECTOR_SIZE)
      if (end > disk.capacity) return reject(status, `sectors ${sector}..${end} go past the capacity of ${disk.capacity} sectors`)
      if (out && disk.readOnly) return reject(status, 'write to a read-only disk')
      const offset = Number(sector) * SECTOR_SIZE
      return { ok: true, request: { type: out ? 'out' : 'in', head, status, sector, offset, len: dataLen, segments: segments() } }
    }
    case VIRTIO_BLK_T_FLUSH:
      if (data.length > 0) return reject(status, 'flush with data descriptors')
      return { ok: true, request: { type: 'flush', head, status } }
    case VIRTIO_BLK_T_GET_ID: {
      const bad = dataShape(true)
      if (bad) return reject(status, bad)
      if (dataLen < VIRTIO_BLK_ID_BYTES) return reject(status, `GET_ID buffer is ${dataLen} bytes, less than ${VIRTIO_BLK_ID_BYTES}`)
      return { ok: true, request: { type: 'get-id', head, status, len: dataLen, segments: segments() } }
    }
    default:
      return reject(status, `request type ${type} is not supported`, VIRTIO_BLK_S_UNSUPP)
  }
}
