import { KtstrError } from '../../util/errors.js'

/** Malformed BTF, or a lookup that does not fit it: one line, never a crash or a hang. */
export class BtfError extends KtstrError {}
