export { PSPNet, PSPNET_SPEC, type PSPNetOptions, type ResolvedPSPNetOptions } from './model.js';
export { PSPDecoder, type PSPDecoderOptions } from './decoder.js';
export { PSPBlock, PSPModule, PSP_SIZES, emitAdaptiveAvgPool } from './blocks.js';
