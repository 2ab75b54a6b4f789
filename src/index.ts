// panseg's public API. Importing it has no side effects beyond loading the native addon.
export * from './engine/index.js';
export * as nn from './nn/index.js';
export { Module, Layer } from './nn/index.js';
export * from './models/index.js';
export * from './io/index.js';
export { PansegError } from './common/errors.js';
