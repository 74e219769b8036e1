import type { TypeObject } from 'koffi'

// asm-generic/ioctl.h (x86 and arm64): nr 8 bits, type 8 bits, size 14 bits, dir 2 bits.
const IOC_NONE = 0
const IOC_WRITE = 1
const IOC_READ = 2

/** A request number from its parts; the size of a struct argument is its C sizeof. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << 14) throw new RangeError(`ioctl argument size ${size} does not fit 14 bits`)
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0
}

const sizeOf = (arg: TypeObject | number) => (typeof arg === 'number' ? arg : arg.size)

export const _IO = (type: number, nr: number) => _IOC(IOC_NONE, type, nr, 0)
export const _IOR = (type: number, nr: number, arg: TypeObject | number) => _IOC(IOC_READ, type, nr, sizeOf(arg))
export const _IOW = (type: number, nr: number, arg: TypeObject | number) => _IOC(IOC_WRITE, type, nr, sizeOf(arg))
export const _IOWR = (type: number, nr: number, arg: TypeObject | number) => _IOC(IOC_READ | IOC_WRITE, type, nr, sizeOf(arg))
