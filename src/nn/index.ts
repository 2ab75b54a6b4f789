export { Module, Layer, type LoadResult } from './module.js';
export * from './layers.js';
export * as init from './init.js';
export { countMacs } from './flops.js';
export { MkldnnConv2d } from './mkldnn-conv.js';
