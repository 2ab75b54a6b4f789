export * from './encoders/index.js';
export * from './base/index.js';
export * from './pan/index.js';
export * from './unet/index.js';
export * from './fpn/index.js';
export * from './pspnet/index.js';
export * from './deeplabv3/index.js';
export { architecture, architectureIds, architectureOfDir, architectures, createModel, loadModel, loadModelWithMeta } from './registry.js';
