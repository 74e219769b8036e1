/**
 * What the driver programmed for one virtqueue through the transport (virtio 1.2 §4.2.2:
 * QueueNum, QueueDesc, QueueDriver, QueueDevice, QueueReady). Addresses are guest physical.
 */
export interface QueueConfig {
  /** Number of entries (QueueNum), a power of 2 up to the device's maximum. */
  size: number
  /** Descriptor table (16-byte aligned). */
  descTable: number
  /** Driver area: the available ring (2-byte aligned). */
  availRing: number
  /** Device area: the used ring (4-byte aligned). */
  usedRing: number
  ready: boolean
}
