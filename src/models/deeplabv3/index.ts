export {
  DeepLabV3, DeepLabV3Plus, DEEPLABV3_SPEC, DEEPLABV3PLUS_SPEC, type DeepLabOutputStride, type DeepLabV3Options, type DeepLabV3PlusOptions,
  type ResolvedDeepLabV3Options, type ResolvedDeepLabV3PlusOptions,
} from './model.js';
export { DeepLabV3Decoder, DeepLabV3PlusDecoder } from './decoder.js';
export { ASPP, ASPPPooling, SeparableConv2d, type ASPPOptions } from './blocks.js';
