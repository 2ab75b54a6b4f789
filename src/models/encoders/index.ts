export * from './types.js';
export * from './registry.js';
export { ResNetEncoder } from './resnet.js';
