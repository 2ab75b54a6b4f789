export { PAN, type InferenceCopyOptions, type InferenceLayout, type PANOptions, type PANOutput, type ResolvedPANOptions, padToMultiple, resolvePANOptions } from './model.js';
export { PANDecoder, type AttentionTrace, type DecoderInterpolation } from './decoder.js';
export { FPABlock, GAUBlock, ConvBnRelu, type FPATrace, type GAUTrace } from './blocks.js';
export { type SmpPANConfig, type PansegMeta, optionsFromSmpConfig, smpConfigFromOptions } from './pretrained.js';
