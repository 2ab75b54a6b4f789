// PSPNet (Zhao et al., CVPR 2017) in smp 0.5's form: encoder -> pyramid pooling on the deepest
// feature -> 3x3 head upsampling x8.
import * as v from '../../common/validate.js';
import { type ArchitectureSpec, type CommonOptions, type ResolvedCommon } from '../base/config.js';
import { type NormOption, usesBatchNorm } from '../base/conv2d-relu.js';
import { loadPretrainedAs, SegmentationModel } from '../base/model.js';
import type { PansegMeta } from '../base/pretrained.js';
import { PSPDecoder } from './decoder.js';

export interface PSPNetOptions extends CommonOptions {
  /** Output channels of the pyramid's final 1x1 conv. Default 512. */
  pspOutChannels?: number;
  /**
   * Norm between each decoder conv and its ReLU: 'batchnorm' (default, = true) or 'identity' (= false:
   * none, the conv gets a bias). The bin-1 block never has one, as in smp. smp <= 0.4 called it psp_use_batchnorm.
   */
  decoderUseNorm?: NormOption;
  /** Channel dropout (Dropout2d) on the decoder's output, in [0, 1]. Default 0.2. */
  pspDropout?: number;
  /**
   * Final bilinear upsampling of the head. Default 8: back to the input size at the default
   * encoderDepth 3 (the pyramid runs on the 1/8 feature); use 16 at depth 4 and 32 at depth 5.
   */
  upsampling?: number;
}

export type ResolvedPSPNetOptions = ResolvedCommon & Required<Pick<PSPNetOptions, 'pspOutChannels' | 'decoderUseNorm' | 'pspDropout' | 'upsampling'>>;

/** PSPNet in the registry: smp's option order and defaults (encoderDepth 3, upsampling 8; encoderWeights null: nothing is downloaded). */
export const PSPNET_SPEC: ArchitectureSpec<ResolvedPSPNetOptions> = {
  name: 'PSPNet',
  id: 'pspnet',
  description: 'Pyramid Scene Parsing Network (Zhao et al. 2017): pooling to 1, 2, 3 and 6 bins on the 1/8 feature, concatenated',
  defaults: {
    encoderName: 'resnet34', encoderWeights: null, encoderDepth: 3, pspOutChannels: 512, decoderUseNorm: 'batchnorm',
    pspDropout: 0.2, inChannels: 3, classes: 1, activation: null, upsampling: 8, auxParams: null,
  },
  check(r, op) {
    v.int(op, 'pspOutChannels', r.pspOutChannels, 1);
    usesBatchNorm(op, 'decoderUseNorm', r.decoderUseNorm);
    v.num(op, 'pspDropout', r.pspDropout, { min: 0, max: 1 });
    v.int(op, 'upsampling', r.upsampling, 1);
  },
  create: (o) => new PSPNet(o),
};

/**
 * Pyramid Scene Parsing Network, weight-compatible with segmentation_models.pytorch's `PSPNet` (0.5):
 * state_dict keys, defaults, initialization and forward as smp's. Input sides must be multiples of
 * the encoder's output stride (8 at the default depth 3).
 * @example
 * const model = new PSPNet({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W] for H, W multiples of 8
 */
export class PSPNet extends SegmentationModel<ResolvedPSPNetOptions> {
  declare decoder: PSPDecoder;

  constructor(options: PSPNetOptions = {}) {
    super(PSPNET_SPEC, options as Partial<ResolvedPSPNetOptions>);
    const c = this.config;
    const decoder = new PSPDecoder(this.encoder.outChannels, { useNorm: c.decoderUseNorm, outChannels: c.pspOutChannels, dropout: c.pspDropout });
    this.setDecoder(decoder, { inChannels: c.pspOutChannels, upsampling: c.upsampling, kernelSize: 3 });
  }

  /** Builds a PSPNet from an smp `save_pretrained` directory (config.json + model.safetensors). */
  static fromPretrained(dir: string): PSPNet {
    return PSPNet.loadPretrained(dir).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dir: string): { model: PSPNet; meta: PansegMeta } {
    return loadPretrainedAs(PSPNET_SPEC, dir) as { model: PSPNet; meta: PansegMeta };
  }
}
