export { numericLeaves, type PayloadOptions, type PayloadResult, payload } from './payload.js'
export { parseTap, type TapCase } from './tap.js'
export { tapTests } from './tap-tests.js'
