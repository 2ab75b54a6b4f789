// PAN (Li et al., BMVC 2018) in smp's form: dilated ResNet -> FPA + GAU decoder -> head.
import * as v from '../../common/validate.js';
import type { Tensor } from '../../engine/index.js';
import type { OutputStride } from '../encoders/index.js';
import { type ArchitectureSpec, type CommonOptions, type ResolvedCommon } from '../base/config.js';
import { loadPretrainedAs, SegmentationModel, type SegmentationOutput } from '../base/model.js';
import type { PansegMeta } from '../base/pretrained.js';
import { pretrainedDir, type PretrainedSourceOptions } from '../base/pretrained-source.js';
import { type AttentionTrace, type DecoderInterpolation, PANDecoder } from './decoder.js';

export interface PANOptions extends CommonOptions {
  /** 16 (default, as the paper), 32, or 8 (an extension). */
  encoderOutputStride?: OutputStride;
  /** Default 32. */
  decoderChannels?: number;
  /** How GAU blocks upsample the deeper feature (FPA always uses bilinear with alignCorners). Default 'bilinear'. */
  decoderInterpolation?: DecoderInterpolation;
  /** Final upsampling factor of the head (default 4: back to input size). */
  upsampling?: number;
}

export type ResolvedPANOptions = ResolvedCommon & Required<Pick<PANOptions, 'encoderOutputStride' | 'decoderChannels' | 'decoderInterpolation' | 'upsampling'>>;

/** PAN in the registry: smp's option order and defaults. */
export const PAN_SPEC: ArchitectureSpec<ResolvedPANOptions> = {
  name: 'PAN',
  id: 'pan',
  description: 'Pyramid Attention Network (Li et al. 2018): dilated encoder, Feature Pyramid Attention, Global Attention Upsample',
  attentionMaps: true,
  defaults: {
    encoderName: 'resnet34', encoderDepth: 5, encoderWeights: null, encoderOutputStride: 16, decoderChannels: 32,
    decoderInterpolation: 'bilinear', inChannels: 3, classes: 1, activation: null, upsampling: 4, auxParams: null,
  },
  check(r, op) {
    v.oneOf(op, 'encoderOutputStride', String(r.encoderOutputStride), ['8', '16', '32']);
    v.int(op, 'decoderChannels', r.decoderChannels, 1);
    v.oneOf(op, 'decoderInterpolation', r.decoderInterpolation, ['bilinear', 'nearest', 'bicubic', 'nearest-exact']);
    v.int(op, 'upsampling', r.upsampling, 1);
  },
  create: (o) => new PAN(o),
};

/**
 * Pyramid Attention Network, weight-compatible with segmentation_models.pytorch's `PAN`.
 * @example
 * const model = new PAN({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W]
 */
export class PAN extends SegmentationModel<ResolvedPANOptions> {
  declare decoder: PANDecoder;

  constructor(options: PANOptions = {}) {
    super(PAN_SPEC, options as Partial<ResolvedPANOptions>);
    const c = this.config;
    this.setDecoder(new PANDecoder(this.encoder.outChannels, c.encoderDepth, c.decoderChannels, c.decoderInterpolation), { inChannels: c.decoderChannels, upsampling: c.upsampling });
  }

  /** The FPA bottleneck must be >= 8 px for its three 2x poolings. */
  override get minInputSize(): number { return this.outputStride * 8; }
  protected override get minInputSizeReason(): string { return 'the FPA bottleneck needs at least 8 px'; }

  /** Forward pass that also returns PAN's attention maps (FPA spatial map and GAU channel weights). */
  forwardWithAttention(x: Tensor): SegmentationOutput & { attention: AttentionTrace } {
    const attention: AttentionTrace = { gau: {} };
    const { masks, labels } = this.run(x, (f) => this.decoder.forward(f, attention), attention);
    return { masks, labels, attention };
  }

  /**
   * Builds a PAN from an smp `save_pretrained` directory (config.json + model.safetensors), or from
   * a Hugging Face Hub repo 'org/name' holding one (`revision` default 'main').
   */
  static fromPretrained(dirOrRepo: string, options: PretrainedSourceOptions = {}): PAN {
    return PAN.loadPretrained(dirOrRepo, options).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dirOrRepo: string, options: PretrainedSourceOptions = {}): { model: PAN; meta: PansegMeta } {
    return loadPretrainedAs(PAN_SPEC, pretrainedDir(dirOrRepo, options)) as { model: PAN; meta: PansegMeta };
  }
}
