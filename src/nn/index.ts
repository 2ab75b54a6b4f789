export { Module, Layer, type LoadResult } from './module.js';
export * from './layers.js';
export * as init from './init.js';
export { countMacs } from './flops.js';
export { MkldnnConv2d } from './mkldnn-conv.js';
export type { OnnxValue, OnnxSize, OnnxEmitter, OnnxEmittable, OnnxInterpolation } from './onnx.js';
export { isOnnxEmittable } from './onnx.js';
