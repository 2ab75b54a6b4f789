// U-Net (Ronneberger et al., MICCAI 2015) in smp 0.5's form: ResNet -> Unet decoder -> head.
import type { InputSizeRule } from '../../common/input-size.js';
import { describe, fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { type ArchitectureSpec, type CommonOptions, type ResolvedCommon } from '../base/config.js';
import { type NormOption, usesBatchNorm } from '../base/conv2d-relu.js';
import { loadPretrainedAs, SegmentationModel } from '../base/model.js';
import type { PansegMeta } from '../base/pretrained.js';
import { UNET_ATTENTIONS, UNET_INTERPOLATIONS, type UnetAttention, type UnetInterpolation } from './blocks.js';
import { UnetDecoder } from './decoder.js';

export interface UnetOptions extends CommonOptions {
  /** Norm between each decoder conv and its ReLU: 'batchnorm' (default, = true) or 'identity' (= false: none, the conv gets a bias). */
  decoderUseNorm?: NormOption;
  /** Output channels of the decoder blocks, deepest first; one per encoder stage. Default [256, 128, 64, 32, 16]. */
  decoderChannels?: number[];
  /** null (default) or 'scse' (spatial and channel squeeze & excitation after each fusion and block). */
  decoderAttentionType?: UnetAttention | null;
  /** How each block resamples to the next skip's size: 'nearest' (default), 'bilinear', 'bicubic', 'area', 'nearest-exact'. */
  decoderInterpolation?: UnetInterpolation;
}

export type ResolvedUnetOptions = ResolvedCommon & Required<Pick<UnetOptions, 'decoderUseNorm' | 'decoderChannels' | 'decoderAttentionType' | 'decoderInterpolation'>>;

/** Unet in the registry: smp's option order and defaults. */
export const UNET_SPEC: ArchitectureSpec<ResolvedUnetOptions> = {
  name: 'Unet',
  id: 'unet',
  description: 'U-Net (Ronneberger et al. 2015): the decoder upsamples step by step, concatenating the encoder feature of each scale',
  defaults: {
    encoderName: 'resnet34', encoderDepth: 5, encoderWeights: null, decoderUseNorm: 'batchnorm',
    decoderChannels: Object.freeze([256, 128, 64, 32, 16]) as number[], decoderAttentionType: null,
    decoderInterpolation: 'nearest', inChannels: 3, classes: 1, activation: null, auxParams: null,
  },
  check(r, op) {
    usesBatchNorm(op, 'decoderUseNorm', r.decoderUseNorm);
    const ch = r.decoderChannels;
    if (!Array.isArray(ch) || !ch.every((c) => v.isInt(c) && c >= 1)) fail(op, `expected an array of positive integers (one per encoder stage) for decoderChannels but received ${describe(ch)}`);
    if (ch.length !== r.encoderDepth) {
      fail(op, `expected ${r.encoderDepth} entries for decoderChannels (one per encoder stage at encoderDepth ${r.encoderDepth}) but received [${ch.join(', ')}], e.g. [${UNET_SPEC.defaults.decoderChannels.slice(0, r.encoderDepth).join(', ')}]`);
    }
    if (r.decoderAttentionType !== null && !(UNET_ATTENTIONS as readonly unknown[]).includes(r.decoderAttentionType)) fail(op, `expected null or 'scse' for decoderAttentionType but received ${describe(r.decoderAttentionType)}`);
    // scSE squeezes channels by 16: smp would build 0-channel convs below that.
    if (r.decoderAttentionType === 'scse' && ch.some((c) => c < 16)) fail(op, `decoderAttentionType 'scse' needs decoderChannels of at least 16 (it squeezes channels by 16) but received [${ch.join(', ')}]`);
    v.oneOf(op, 'decoderInterpolation', r.decoderInterpolation, UNET_INTERPOLATIONS);
  },
  create: (o) => new Unet(o),
};

/**
 * U-Net, weight-compatible with segmentation_models.pytorch's `Unet` (0.5): state_dict keys, defaults,
 * initialization and forward as smp's. Like smp's, it takes inputs of any size: each decoder block
 * resamples to the size of the encoder feature it fuses.
 * @example
 * const model = new Unet({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W]
 */
export class Unet extends SegmentationModel<ResolvedUnetOptions> {
  declare decoder: UnetDecoder;

  constructor(options: UnetOptions = {}) {
    super(UNET_SPEC, options as Partial<ResolvedUnetOptions>);
    const c = this.config;
    const channels = [...c.decoderChannels];
    this.setDecoder(new UnetDecoder(this.encoder.outChannels, channels, {
      useNorm: c.decoderUseNorm, attention: c.decoderAttentionType, interpolation: c.decoderInterpolation,
      addCenterBlock: c.encoderName.startsWith('vgg'), // smp's rule
    }), { inChannels: channels[channels.length - 1] });
  }

  /** Any size: smp's Unet sets requires_divisible_input_shape = False (each block resamples to its skip's size). */
  override get inputSizeRule(): InputSizeRule { return { stride: 1, min: 1 }; }
  override get minInputSize(): number { return 1; }

  /** Builds a Unet from an smp `save_pretrained` directory (config.json + model.safetensors). */
  static fromPretrained(dir: string): Unet {
    return Unet.loadPretrained(dir).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dir: string): { model: Unet; meta: PansegMeta } {
    return loadPretrainedAs(UNET_SPEC, dir) as { model: Unet; meta: PansegMeta };
  }
}
