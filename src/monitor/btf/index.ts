/** Reading BTF: the kernel's (types, member offsets, per-CPU variables) and a BPF map's (value decoding). */
export { Btf, type MemberLocation, type PercpuVar } from './btf.js'
export { type BtfValue, type DecodeOptions, decodeValue } from './decode.js'
export { BtfError } from './errors.js'
export { type BtfHeader, parseHeader } from './parse.js'
export { rawDump, rawLines } from './raw.js'
export * from './types.js'
