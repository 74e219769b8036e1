/** BTF type records as `include/uapi/linux/btf.h` lays them out, one interface per kind. */

/** Kind names as bpftool prints them, indexed by BTF_KIND_* number. */
export const KIND_NAMES = [
  'UNKN',
  'INT',
  'PTR',
  'ARRAY',
  'STRUCT',
  'UNION',
  'ENUM',
  'FWD',
  'TYPEDEF',
  'VOLATILE',
  'CONST',
  'RESTRICT',
  'FUNC',
  'FUNC_PROTO',
  'VAR',
  'DATASEC',
  'FLOAT',
  'DECL_TAG',
  'TYPE_TAG',
  'ENUM64',
] as const

export type BtfKind = Exclude<(typeof KIND_NAMES)[number], 'UNKN'>

/** BTF_INT_* encoding bits. */
export const INT_SIGNED = 1
export const INT_CHAR = 2
export const INT_BOOL = 4

interface Base {
  id: number
  /** '' for an anonymous type (name_off 0). */
  name: string
  nameOff: number
  kindFlag: boolean
}

export interface BtfInt extends Base {
  kind: 'INT'
  size: number
  /** BTF_INT_SIGNED | BTF_INT_CHAR | BTF_INT_BOOL bits. */
  encoding: number
  /** Bit offset of the value inside its `size` bytes (BTF_INT_OFFSET; 0 in practice). */
  bitsOffset: number
  bits: number
}

/** The kinds that only point at another type. */
export interface BtfRef extends Base {
  kind: 'PTR' | 'TYPEDEF' | 'VOLATILE' | 'CONST' | 'RESTRICT' | 'TYPE_TAG'
  type: number
}

export interface BtfArray extends Base {
  kind: 'ARRAY'
  type: number
  indexType: number
  nelems: number
}

export interface BtfMember {
  name: string
  nameOff: number
  type: number
  bitsOffset: number
  /** Width of a bitfield (kind_flag set and non-zero size), else 0. */
  bitfieldSize: number
}

export interface BtfComposite extends Base {
  kind: 'STRUCT' | 'UNION'
  size: number
  members: BtfMember[]
}

export interface BtfEnumValue<V> {
  name: string
  nameOff: number
  value: V
}

export interface BtfEnum extends Base {
  kind: 'ENUM'
  size: number
  signed: boolean
  values: BtfEnumValue<number>[]
}

export interface BtfEnum64 extends Base {
  kind: 'ENUM64'
  size: number
  signed: boolean
  values: BtfEnumValue<bigint>[]
}

export interface BtfFwd extends Base {
  kind: 'FWD'
  /** kind_flag: a forward union, else a forward struct. */
  union: boolean
}

export interface BtfFunc extends Base {
  kind: 'FUNC'
  type: number
  /** BTF_FUNC_STATIC (0), GLOBAL (1), EXTERN (2): held in vlen. */
  linkage: number
}

export interface BtfParam {
  name: string
  nameOff: number
  type: number
}

export interface BtfFuncProto extends Base {
  kind: 'FUNC_PROTO'
  returnType: number
  params: BtfParam[]
}

export interface BtfVar extends Base {
  kind: 'VAR'
  type: number
  /** BTF_VAR_STATIC (0), GLOBAL_ALLOCATED (1), GLOBAL_EXTERN (2). */
  linkage: number
}

export interface BtfVarSecinfo {
  type: number
  offset: number
  size: number
}

export interface BtfDatasec extends Base {
  kind: 'DATASEC'
  size: number
  vars: BtfVarSecinfo[]
}

export interface BtfFloat extends Base {
  kind: 'FLOAT'
  size: number
}

export interface BtfDeclTag extends Base {
  kind: 'DECL_TAG'
  type: number
  /** -1 for the type itself, else the member or parameter index. */
  componentIdx: number
}

export type BtfType = BtfInt | BtfRef | BtfArray | BtfComposite | BtfEnum | BtfEnum64 | BtfFwd | BtfFunc | BtfFuncProto | BtfVar | BtfDatasec | BtfFloat | BtfDeclTag
