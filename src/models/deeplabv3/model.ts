// DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al., ECCV 2018) in smp 0.5's form: a dilated
// ResNet (output stride 8 or 16) -> ASPP decoder -> 1x1 head with bilinear upsampling.
import { describe, fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { getRngState, setRngState } from '../../engine/index.js';
import { type Conv2d, init, type Linear } from '../../nn/index.js';
import { type ArchitectureSpec, type CommonOptions, type ResolvedCommon } from '../base/config.js';
import { type Decoder, type HeadOptions, loadPretrainedAs, SegmentationModel } from '../base/model.js';
import type { PansegMeta } from '../base/pretrained.js';
import type { ASPPOptions } from './blocks.js';
import { DeepLabV3Decoder, DeepLabV3PlusDecoder } from './decoder.js';

export type DeepLabOutputStride = 8 | 16;

interface DeepLabCommonOptions extends CommonOptions {
  /** Channels of the ASPP branches and of the decoder's output. Default 256. */
  decoderChannels?: number;
  /** Dilation rates of the ASPP's three atrous 3x3 branches. Default [12, 24, 36]. */
  decoderAtrousRates?: number[];
  /** nn.Dropout after the ASPP projection, in [0, 1]. Default 0.5. */
  decoderAsppDropout?: number;
}

export interface DeepLabV3Options extends DeepLabCommonOptions {
  /** The encoder's output stride: 8 (default; layer3 and layer4 dilated) or 16 (layer4 dilated). */
  encoderOutputStride?: DeepLabOutputStride;
  /** Depthwise-separable atrous convolutions in the ASPP. Default false. */
  decoderAsppSeparable?: boolean;
  /**
   * Final bilinear upsampling of the head. Default null: the encoder's output stride
   * (min(encoderOutputStride, 2^encoderDepth)), so that logits have the input's size.
   */
  upsampling?: number | null;
}

export interface DeepLabV3PlusOptions extends DeepLabCommonOptions {
  /** The encoder's output stride: 16 (default) or 8. */
  encoderOutputStride?: DeepLabOutputStride;
  /** Depthwise-separable atrous convolutions in the ASPP. Default true. */
  decoderAsppSeparable?: boolean;
  /** Final bilinear upsampling of the head (the decoder works at 1/4). Default 4. */
  upsampling?: number;
}

type Resolved<O, K extends keyof O> = ResolvedCommon & Required<Pick<O, K>>;
export type ResolvedDeepLabV3Options = Resolved<DeepLabV3Options, 'encoderOutputStride' | 'decoderChannels' | 'decoderAtrousRates' | 'decoderAsppSeparable' | 'decoderAsppDropout' | 'upsampling'>;
export type ResolvedDeepLabV3PlusOptions = Resolved<DeepLabV3PlusOptions, 'encoderOutputStride' | 'decoderChannels' | 'decoderAtrousRates' | 'decoderAsppSeparable' | 'decoderAsppDropout' | 'upsampling'>;

/** Checks the options both DeepLabs share (smp's own check: output stride 8 or 16). */
function checkDeepLab(r: ResolvedDeepLabV3Options | ResolvedDeepLabV3PlusOptions, op: string): void {
  if (r.encoderOutputStride !== 8 && r.encoderOutputStride !== 16) fail(op, `expected 8 or 16 for encoderOutputStride but received ${describe(r.encoderOutputStride)}`);
  v.int(op, 'decoderChannels', r.decoderChannels, 1);
  const rates = r.decoderAtrousRates;
  if (!Array.isArray(rates) || rates.length !== 3 || !rates.every((x) => v.isInt(x) && x >= 1)) {
    fail(op, `expected 3 positive integers for decoderAtrousRates (the ASPP's three dilation rates) but received ${describe(rates)}, e.g. [12, 24, 36]`);
  }
  v.bool(op, 'decoderAsppSeparable', r.decoderAsppSeparable);
  v.num(op, 'decoderAsppDropout', r.decoderAsppDropout, { min: 0, max: 1 });
}

const RATES = Object.freeze([12, 24, 36]) as number[];

/** DeepLabV3 in the registry: smp's option order and defaults. */
export const DEEPLABV3_SPEC: ArchitectureSpec<ResolvedDeepLabV3Options> = {
  name: 'DeepLabV3',
  id: 'deeplabv3',
  description: 'DeepLabV3 (Chen et al. 2017): dilated encoder at output stride 8, atrous spatial pyramid pooling with image pooling',
  defaults: {
    encoderName: 'resnet34', encoderDepth: 5, encoderWeights: null, encoderOutputStride: 8, decoderChannels: 256,
    decoderAtrousRates: RATES, decoderAsppSeparable: false, decoderAsppDropout: 0.5, inChannels: 3, classes: 1,
    activation: null, upsampling: null, auxParams: null,
  },
  check(r, op) {
    checkDeepLab(r, op);
    if (r.upsampling !== null) v.int(op, 'upsampling', r.upsampling, 1);
  },
  create: (o) => new DeepLabV3(o),
};

/** DeepLabV3Plus in the registry: smp's option order and defaults. */
export const DEEPLABV3PLUS_SPEC: ArchitectureSpec<ResolvedDeepLabV3PlusOptions> = {
  name: 'DeepLabV3Plus',
  id: 'deeplabv3plus',
  description: 'DeepLabV3+ (Chen et al. 2018): separable ASPP at output stride 16, fused with the 1/4 feature by a light decoder',
  defaults: {
    encoderName: 'resnet34', encoderDepth: 5, encoderWeights: null, encoderOutputStride: 16, decoderChannels: 256,
    decoderAtrousRates: RATES, decoderAsppSeparable: true, decoderAsppDropout: 0.5, inChannels: 3, classes: 1,
    activation: null, upsampling: 4, auxParams: null,
  },
  check(r, op) {
    checkDeepLab(r, op);
    v.int(op, 'upsampling', r.upsampling, 1);
  },
  create: (o) => new DeepLabV3Plus(o),
};

function asppOptions(c: ResolvedDeepLabV3Options | ResolvedDeepLabV3PlusOptions): ASPPOptions {
  return { atrousRates: [...c.decoderAtrousRates] as [number, number, number], separable: c.decoderAsppSeparable, dropout: c.decoderAsppDropout };
}

/** What both DeepLabs share: smp builds their heads and never calls initialize(). */
abstract class DeepLabModel<R extends ResolvedCommon> extends SegmentationModel<R> {
  /**
   * setDecoder, with the heads left at PyTorch's default init instead of the base's xavier (smp's DeepLab
   * models skip initialize()): the head conv and the aux linear are redrawn from the generator state taken
   * before the heads were built, so the decoder and heads draw smp's numbers from the same generator state.
   */
  protected setDecoderKeepingDefaultInit(decoder: Decoder, head: HeadOptions): void {
    const rng = getRngState();
    try {
      this.setDecoder(decoder, head);
      setRngState(rng);
    } finally {
      rng.dispose();
    }
    const conv = this.segmentationHead.at(0) as Conv2d;
    init.defaultInit_(conv.weight, conv.bias);
    if (this.classificationHead) {
      const linear = this.classificationHead.at(3) as Linear;
      init.defaultInit_(linear.weight, linear.bias);
    }
  }
}

/**
 * DeepLabV3, weight-compatible with segmentation_models.pytorch's `DeepLabV3` (0.5): state_dict keys,
 * defaults, initialization and forward as smp's.
 * @example
 * const model = new DeepLabV3({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W] for H, W multiples of 8
 */
export class DeepLabV3 extends DeepLabModel<ResolvedDeepLabV3Options> {
  declare decoder: DeepLabV3Decoder;

  constructor(options: DeepLabV3Options = {}) {
    super(DEEPLABV3_SPEC, options as Partial<ResolvedDeepLabV3Options>);
    const c = this.config;
    const decoder = new DeepLabV3Decoder(this.encoder.outChannels[this.encoder.outChannels.length - 1], c.decoderChannels, asppOptions(c));
    // smp: upsampling null -> 2^depth at depth <= 3, else the output stride; both equal the encoder's output stride.
    const upsampling = c.upsampling ?? this.encoder.outputStride;
    this.setDecoderKeepingDefaultInit(decoder, { inChannels: c.decoderChannels, upsampling, kernelSize: 1 });
  }

  /** Builds a DeepLabV3 from an smp `save_pretrained` directory (config.json + model.safetensors). */
  static fromPretrained(dir: string): DeepLabV3 {
    return DeepLabV3.loadPretrained(dir).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dir: string): { model: DeepLabV3; meta: PansegMeta } {
    return loadPretrainedAs(DEEPLABV3_SPEC, dir) as { model: DeepLabV3; meta: PansegMeta };
  }
}

/**
 * DeepLabV3+, weight-compatible with segmentation_models.pytorch's `DeepLabV3Plus` (0.5).
 * @example
 * const model = new DeepLabV3Plus({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W] for H, W multiples of 16
 */
export class DeepLabV3Plus extends DeepLabModel<ResolvedDeepLabV3PlusOptions> {
  declare decoder: DeepLabV3PlusDecoder;

  constructor(options: DeepLabV3PlusOptions = {}) {
    super(DEEPLABV3PLUS_SPEC, options as Partial<ResolvedDeepLabV3PlusOptions>);
    const c = this.config;
    const decoder = new DeepLabV3PlusDecoder(this.encoder.outChannels, c.encoderDepth, c.decoderChannels, c.encoderOutputStride, asppOptions(c));
    this.setDecoderKeepingDefaultInit(decoder, { inChannels: c.decoderChannels, upsampling: c.upsampling, kernelSize: 1 });
  }

  /** Builds a DeepLabV3Plus from an smp `save_pretrained` directory (config.json + model.safetensors). */
  static fromPretrained(dir: string): DeepLabV3Plus {
    return DeepLabV3Plus.loadPretrained(dir).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dir: string): { model: DeepLabV3Plus; meta: PansegMeta } {
    return loadPretrainedAs(DEEPLABV3PLUS_SPEC, dir) as { model: DeepLabV3Plus; meta: PansegMeta };
  }
}
