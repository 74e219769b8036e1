export { payload, numericLeaves, type PayloadOptions, type PayloadResult } from './payload.js'
export { parseTap, type TapCase } from './tap.js'
export { tapTests } from './tap-tests.js'
