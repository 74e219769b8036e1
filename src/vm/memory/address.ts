/**
 * Guest-physical addresses. A `GuestAddress` is a plain number (exact up to 2^53, far beyond any
 * guest we build) branded so a host offset or a length cannot be passed where a guest-physical
 * address is meant without saying so. Every `GuestAddress` is also a `number`, so APIs that only
 * read addresses (GuestMemory) accept plain numbers too.
 */
declare const guestAddressBrand: unique symbol
export type GuestAddress = number & { readonly [guestAddressBrand]: true }

/** Brands `n` after checking it is a non-negative safe integer. */
export function guestAddress(n: number): GuestAddress {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${n} is not a guest-physical address`)
  return n as GuestAddress
}

export function addAddress(a: GuestAddress, offset: number): GuestAddress {
  return guestAddress(a + offset)
}

/**
 * The 64-bit address a driver programs as two 32-bit halves (virtio-mmio QueueDescLow/High…);
 * undefined when it does not fit a safe integer, which no guest RAM reaches anyway.
 */
export function guestAddressFromParts(low: number, high: number): GuestAddress | undefined {
  const hi = high >>> 0
  if (hi >= 0x20_0000) return undefined // 2^21 * 2^32 = 2^53
  return (hi * 0x1_0000_0000 + (low >>> 0)) as GuestAddress
}

export const isPow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0

export const alignUp = (n: number, align: number): number => Math.ceil(n / align) * align
export const alignDown = (n: number, align: number): number => Math.floor(n / align) * align

export const hex = (n: number | bigint): string => `0x${n.toString(16)}`
