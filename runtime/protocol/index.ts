export * from './frame.js'
export * from './messages.js'
export * from './spec.js'
export * from './endpoint.js'
