export { PAN, PAN_SPEC, type PANOptions, type ResolvedPANOptions } from './model.js';
export { PANDecoder, type AttentionTrace, type DecoderInterpolation } from './decoder.js';
export { FPABlock, GAUBlock, type FPATrace, type GAUTrace } from './blocks.js';
