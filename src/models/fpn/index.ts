export { FPN, FPN_SPEC, type FPNOptions, type ResolvedFPNOptions } from './model.js';
export { FPNDecoder, type FPNDecoderOptions } from './decoder.js';
// SegmentationBlock and MergeBlock stay in ./blocks.js: their names are too generic for the models barrel.
export { Conv3x3GNReLU, FPNBlock, type FPNInterpolation, type MergePolicy } from './blocks.js';
