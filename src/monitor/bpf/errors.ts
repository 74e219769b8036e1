import { KtstrError } from '../../util/errors.js'

/** A BPF map request that does not fit the guest's maps (unknown name, wrong value shape, read-only map): one line naming the fix. */
export class BpfMapError extends KtstrError {}
