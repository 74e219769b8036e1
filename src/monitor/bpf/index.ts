/**
 * The guest's BPF maps read and written from the host through a KernelView: list them
 * (findBpfObjects / listMaps), read ARRAY, PERCPU_ARRAY and HASH maps (readMap), a scheduler's
 * .bss/.data/.rodata globals (readGlobals / setGlobal), write an ARRAY element (writeArrayElem), and
 * which sched_ext scheduler is attached (attachedScheduler). Errors a user can fix are BpfMapErrors.
 */
export { encodeValue } from './encode.js'
export { BpfMapError } from './errors.js'
export { GLOBAL_SECTIONS, type GlobalSection, type GlobalsOptions, readGlobals, type SchedulerGlobals, schedulerGlobals, setGlobal } from './globals.js'
export { findMap } from './lookup.js'
export { mapBtf } from './map-btf.js'
export { type BpfLinkRef, type BpfMapInfo, type BpfObjects, findBpfObjects, formatMap, listMaps, type MapOwner } from './maps.js'
export { type BpfValue, type MapContents, type MapEntry, READABLE_TYPES, type ReadOptions, readMap } from './read.js'
export { attachedScheduler, type StructOpsInfo, structOpsMaps } from './struct-ops.js'
export { type GuestTask, initTask, walkTasks } from './tasks.js'
export { refuseReadOnly, writeArrayElem } from './write.js'
