export { Unet, UNET_SPEC, type UnetOptions, type ResolvedUnetOptions } from './model.js';
export { UnetDecoder, type UnetDecoderOptions } from './decoder.js';
export {
  UnetDecoderBlock, UnetCenterBlock, SCSEModule, Attention, UNET_INTERPOLATIONS, UNET_ATTENTIONS, type UnetInterpolation, type UnetAttention, type UnetBlockOptions,
} from './blocks.js';
