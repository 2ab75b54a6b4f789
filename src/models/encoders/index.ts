export * from './types.js';
export * from './registry.js';
export { EncoderBase } from './base.js';
export { ResNetEncoder, type ResNetSpec } from './resnet.js';
export { MobileNetV2Encoder, type MobileNetV2Spec } from './mobilenet.js';
