// virtio-blk numbers from virtio 1.2 §5.2 (the reserved feature bits of §6 are VIRTIO_F in ../mmio.ts).

/** Device ID of a block device (§5.2.1). */
export const VIRTIO_ID_BLOCK = 2

// Feature bits (§5.2.3).
export const VIRTIO_BLK_F_SIZE_MAX = 1
export const VIRTIO_BLK_F_SEG_MAX = 2
export const VIRTIO_BLK_F_RO = 5
export const VIRTIO_BLK_F_BLK_SIZE = 6
export const VIRTIO_BLK_F_FLUSH = 9

// Request types (§5.2.6). Only these four are offered; every other type is S_UNSUPP.
export const VIRTIO_BLK_T_IN = 0
export const VIRTIO_BLK_T_OUT = 1
export const VIRTIO_BLK_T_FLUSH = 4
export const VIRTIO_BLK_T_GET_ID = 8

// Status byte values (§5.2.6).
export const VIRTIO_BLK_S_OK = 0
export const VIRTIO_BLK_S_IOERR = 1
export const VIRTIO_BLK_S_UNSUPP = 2

/** Sectors are always 512 bytes, whatever blk_size says (§5.2.6). */
export const SECTOR_SIZE = 512
/** GET_ID answers with a 20-byte serial, NUL-padded and not NUL-terminated at 20 (§5.2.6). */
export const VIRTIO_BLK_ID_BYTES = 20
/** The request header: le32 type, le32 reserved, le64 sector. */
export const BLK_HEADER_SIZE = 16

/** Offsets in `struct virtio_blk_config` (§5.2.4). */
export const BLK_CONFIG = {
  capacity: 0,
  sizeMax: 8,
  segMax: 12,
  blkSize: 20,
  /** Through the zoned characteristics of virtio 1.2; everything past blk_size reads as zero. */
  length: 96,
} as const
