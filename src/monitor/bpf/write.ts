/** Writing one element of an ARRAY map in guest memory, encoded through the map's BTF (or given as bytes). */
import type { KernelView } from '../kernel-view.js'
import { encodeValue } from './encode.js'
import { BpfMapError } from './errors.js'
import { mapBtf } from './map-btf.js'
import type { BpfMapInfo } from './maps.js'
import { arrayElemAddress } from './read.js'

/** A `.rodata` map (frozen by libbpf after load: the program's constants, possibly inlined by the verifier) is never written. */
export function refuseReadOnly(map: BpfMapInfo): void {
  if (map.frozen || map.name.endsWith('.rodata'))
    throw new BpfMapError(`BPF map '${map.name}' is read-only (a frozen .rodata: the verifier may have inlined its values); write a .bss or .data global or another map`)
}

/**
 * Set element `index` of ARRAY map `map` to `value`: a Uint8Array of exactly value_size bytes, or a
 * plain value encoded through the map's BTF over the element's current bytes (an object naming some
 * members changes only those). Not atomic against the BPF program writing the same element.
 */
export function writeArrayElem(view: KernelView, map: BpfMapInfo, index: number, value: unknown): void {
  if (map.type !== 'array') throw new BpfMapError(`BPF map '${map.name}' is a ${map.type} map; ktstr writes elements of array maps only`)
  refuseReadOnly(map)
  if (!Number.isInteger(index) || index < 0 || index >= map.maxEntries)
    throw new BpfMapError(`BPF map '${map.name}': index ${index} is out of range; it has ${map.maxEntries} element${map.maxEntries === 1 ? '' : 's'} (0 … ${map.maxEntries - 1})`)
  const at = arrayElemAddress(view, map, index)
  let bytes: Uint8Array
  if (value instanceof Uint8Array) {
    if (value.length !== map.valueSize)
      throw new BpfMapError(`BPF map '${map.name}': the value is ${value.length} bytes, its values are ${map.valueSize}; pass exactly ${map.valueSize} bytes`)
    bytes = value
  } else {
    const btf = mapBtf(view, map)
    if (!btf || !map.btfValueTypeId) throw new BpfMapError(`BPF map '${map.name}' has no BTF for its values; pass the value as a Uint8Array of exactly ${map.valueSize} bytes`)
    const cur = view.read(at, map.valueSize)
    if (!cur) throw new BpfMapError(`BPF map '${map.name}' (id ${map.id}) is not readable: it was freed; list the maps again`)
    encodeValue(btf, map.btfValueTypeId, value, cur, `${map.name}[${index}]`)
    bytes = cur
  }
  if (!view.write(at, bytes)) throw new BpfMapError(`BPF map '${map.name}' (id ${map.id}) is not writable at 0x${at.toString(16)}: it was freed; list the maps again`)
}
