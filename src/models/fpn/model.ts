// FPN (Lin et al., CVPR 2017) as a segmentation network in smp's form: encoder -> feature pyramid
// with four segmentation branches -> 1x1 head upsampling x4.
import { fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { type ArchitectureSpec, type CommonOptions, type ResolvedCommon } from '../base/config.js';
import { loadPretrainedAs, SegmentationModel } from '../base/model.js';
import type { PansegMeta } from '../base/pretrained.js';
import { FPN_INTERPOLATIONS, type FPNInterpolation, type MergePolicy } from './blocks.js';
import { FPNDecoder } from './decoder.js';

export interface FPNOptions extends CommonOptions {
  /** Channels of the pyramid levels. Default 256. */
  decoderPyramidChannels?: number;
  /** Channels of each of the four segmentation branches, a multiple of 32 (GroupNorm(32)). Default 128. */
  decoderSegmentationChannels?: number;
  /** How the branches merge: 'add' (default) or 'cat' (4 x decoderSegmentationChannels into the head). */
  decoderMergePolicy?: MergePolicy;
  /** Channel dropout (Dropout2d) on the merged map, in [0, 1]. Default 0.2. */
  decoderDropout?: number;
  /** How the pyramid upsamples each level x2. Default 'nearest'. */
  decoderInterpolation?: FPNInterpolation;
  /**
   * Final bilinear upsampling of the head. Default 4: back to the input size at encoderDepth 5. As smp,
   * depth 4 and 3 keep four pyramid levels by going down to the 1/2 feature and the input, so their
   * logits are then 2x and 4x the input size.
   */
  upsampling?: number;
}

export type ResolvedFPNOptions = ResolvedCommon & Required<Pick<FPNOptions,
  'decoderPyramidChannels' | 'decoderSegmentationChannels' | 'decoderMergePolicy' | 'decoderDropout' | 'decoderInterpolation' | 'upsampling'>>;

/** FPN in the registry: smp's option order and defaults (encoderWeights null: nothing is downloaded). */
export const FPN_SPEC: ArchitectureSpec<ResolvedFPNOptions> = {
  name: 'FPN',
  id: 'fpn',
  description: 'Feature Pyramid Network (Lin et al. 2017): top-down pyramid, four conv+GroupNorm branches merged at 1/4 resolution',
  defaults: {
    encoderName: 'resnet34', encoderDepth: 5, encoderWeights: null, decoderPyramidChannels: 256, decoderSegmentationChannels: 128,
    decoderMergePolicy: 'add', decoderDropout: 0.2, decoderInterpolation: 'nearest', inChannels: 3, classes: 1, activation: null,
    upsampling: 4, auxParams: null,
  },
  check(r, op) {
    v.int(op, 'decoderPyramidChannels', r.decoderPyramidChannels, 1);
    const seg = v.int(op, 'decoderSegmentationChannels', r.decoderSegmentationChannels, 1);
    if (seg % 32 !== 0) fail(op, `decoderSegmentationChannels must be a multiple of 32 (GroupNorm uses 32 groups), got ${seg}; try ${Math.max(32, Math.round(seg / 32) * 32)}`);
    v.oneOf(op, 'decoderMergePolicy', r.decoderMergePolicy, ['add', 'cat']);
    v.num(op, 'decoderDropout', r.decoderDropout, { min: 0, max: 1 });
    v.oneOf(op, 'decoderInterpolation', r.decoderInterpolation, FPN_INTERPOLATIONS);
    v.int(op, 'upsampling', r.upsampling, 1);
  },
  create: (o) => new FPN(o),
};

/**
 * Feature Pyramid Network, weight-compatible with segmentation_models.pytorch's `FPN`.
 * @example
 * const model = new FPN({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W] for H, W multiples of 32
 */
export class FPN extends SegmentationModel<ResolvedFPNOptions> {
  declare decoder: FPNDecoder;

  constructor(options: FPNOptions = {}) {
    super(FPN_SPEC, options as Partial<ResolvedFPNOptions>);
    const c = this.config;
    const decoder = new FPNDecoder(this.encoder.outChannels, c.encoderDepth, {
      pyramidChannels: c.decoderPyramidChannels, segmentationChannels: c.decoderSegmentationChannels,
      dropout: c.decoderDropout, mergePolicy: c.decoderMergePolicy, interpolation: c.decoderInterpolation,
    });
    this.setDecoder(decoder, { inChannels: decoder.outChannels, upsampling: c.upsampling, kernelSize: 1 });
  }

  /** Builds an FPN from an smp `save_pretrained` directory (config.json + model.safetensors). */
  static fromPretrained(dir: string): FPN {
    return FPN.loadPretrained(dir).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dir: string): { model: FPN; meta: PansegMeta } {
    return loadPretrainedAs(FPN_SPEC, dir) as { model: FPN; meta: PansegMeta };
  }
}
