// PAN (Li et al., BMVC 2018) in smp's form: dilated ResNet -> FPA + GAU decoder -> head.
import { fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { F, getRngState, inferenceMode, mkldnnAvailable, setRngState, type Tensor, tidy } from '../../engine/index.js';
import { loadWeights } from '../../io/weights.js';
import { Module } from '../../nn/index.js';
import { foldBatchNorms, packConvsForMkldnn } from '../fuse.js';
import { createEncoder, type Encoder, encoderEntry, type OutputStride, type Preprocessing, preprocessingParams } from '../encoders/index.js';
import { type ActivationName, ACTIVATIONS, type AuxParams, ClassificationHead, SegmentationHead } from '../heads.js';
import { type AttentionTrace, type DecoderInterpolation, PANDecoder } from './decoder.js';
import { type PansegMeta, readPretrained, smpConfigFromOptions, writePretrained } from './pretrained.js';

type InferenceDtype = 'float32' | 'bfloat16' | 'float16';

export interface InferenceLayout {
  /** Encoder activations in oneDNN's blocked layout, convolution weights packed for it. */
  mkldnn: boolean;
  channelsLast: boolean;
  dtype: InferenceDtype;
}

export interface InferenceCopyOptions {
  /** Weight and compute dtype. Default 'float32'. */
  dtype?: InferenceDtype;
  /**
   * 'mkldnn': convolution weights packed once for oneDNN, encoder activations kept in its blocked
   * layout (CPU; float32 or bfloat16). 'strided': ordinary tensors. Default: 'mkldnn' where it
   * measured fastest (CPU, float32 or bfloat16, a oneDNN libtorch) unless channelsLast is given, else 'strided'.
   */
  layout?: 'mkldnn' | 'strided';
  /** NHWC memory order for the strided layout. Default true (faster on CPU than NCHW). */
  channelsLast?: boolean;
}

/** Dtypes whose default copy uses the blocked layout, from bench/pan.ts (see README, Inference speed). */
const MKLDNN_DEFAULT_DTYPES: readonly InferenceDtype[] = ['float32', 'bfloat16'];

export interface PANOptions {
  /** Default 'resnet34'. */
  encoderName?: string;
  /** 3, 4 or 5 (default 5). */
  encoderDepth?: 3 | 4 | 5;
  /** 16 (default, as the paper), 32, or 8 (an extension). */
  encoderOutputStride?: OutputStride;
  /** null (random init, default) or a path to a torchvision ResNet checkpoint (.pth or .safetensors). */
  encoderWeights?: string | null;
  /** Default 32. */
  decoderChannels?: number;
  /** How GAU blocks upsample the deeper feature (FPA always uses bilinear with alignCorners). Default 'bilinear'. */
  decoderInterpolation?: DecoderInterpolation;
  /** Default 3. */
  inChannels?: number;
  /** Default 1. */
  classes?: number;
  /** Applied to the logits; default null (identity). */
  activation?: ActivationName | null;
  /** Final upsampling factor of the head (default 4: back to input size). */
  upsampling?: number;
  /** Auxiliary classification head on the deepest feature; default null. */
  auxParams?: AuxParams | null;
}

export type ResolvedPANOptions = Required<Omit<PANOptions, 'encoderWeights' | 'activation' | 'auxParams'>> & {
  encoderWeights: string | null;
  activation: ActivationName | null;
  auxParams: AuxParams | null;
};

export function resolvePANOptions(o: PANOptions = {}): ResolvedPANOptions {
  const op = 'PAN';
  const r: ResolvedPANOptions = {
    encoderName: o.encoderName ?? 'resnet34',
    encoderDepth: o.encoderDepth ?? 5,
    encoderOutputStride: o.encoderOutputStride ?? 16,
    encoderWeights: o.encoderWeights ?? null,
    decoderChannels: o.decoderChannels ?? 32,
    decoderInterpolation: o.decoderInterpolation ?? 'bilinear',
    inChannels: o.inChannels ?? 3,
    classes: o.classes ?? 1,
    activation: o.activation ?? null,
    upsampling: o.upsampling ?? 4,
    auxParams: o.auxParams ?? null,
  };
  encoderEntry(r.encoderName);
  v.oneOf(op, 'encoderDepth', String(r.encoderDepth), ['3', '4', '5']);
  v.oneOf(op, 'encoderOutputStride', String(r.encoderOutputStride), ['8', '16', '32']);
  v.int(op, 'decoderChannels', r.decoderChannels, 1);
  v.oneOf(op, 'decoderInterpolation', r.decoderInterpolation, ['bilinear', 'nearest', 'bicubic', 'nearest-exact']);
  v.int(op, 'inChannels', r.inChannels, 1);
  v.int(op, 'classes', r.classes, 1);
  if (r.activation !== null) v.oneOf(op, 'activation', r.activation, ACTIVATIONS);
  v.int(op, 'upsampling', r.upsampling, 1);
  if (r.encoderWeights !== null && typeof r.encoderWeights !== 'string') fail(op, `expected null or a file path for encoderWeights but received ${String(r.encoderWeights)}`);
  return r;
}

/** Outputs of a forward pass with the auxiliary head. */
export interface PANOutput {
  /** Logits (after the activation, if any) [N, classes, H, W]. */
  masks: Tensor;
  /** Classification head output [N, auxClasses], when auxParams is set. */
  labels: Tensor | null;
}

/**
 * Pyramid Attention Network, weight-compatible with segmentation_models.pytorch's `PAN`.
 * @example
 * const model = new PAN({ encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W]
 */
export class PAN extends Module {
  readonly config: ResolvedPANOptions;
  readonly encoder: Encoder;
  readonly decoder: PANDecoder;
  readonly segmentationHead: SegmentationHead;
  readonly classificationHead: ClassificationHead | null;

  /** Set on copies made by optimizedForInference(). */
  private layout: InferenceLayout | null = null;

  constructor(options: PANOptions = {}) {
    super();
    const c = (this.config = resolvePANOptions(options));
    this.encoder = this.child('encoder', createEncoder(c.encoderName, { inChannels: c.inChannels, depth: c.encoderDepth, outputStride: c.encoderOutputStride }));
    if (c.encoderWeights !== null) {
      const sd = loadWeights(c.encoderWeights);
      try { this.encoder.loadImagenet(sd); } finally { for (const t of sd.values()) t.dispose(); }
    }
    this.decoder = this.child('decoder', new PANDecoder(this.encoder.outChannels, c.encoderDepth, c.decoderChannels, c.decoderInterpolation));
    this.segmentationHead = this.child('segmentation_head', new SegmentationHead(c.decoderChannels, c.classes, { upsampling: c.upsampling, activation: c.activation }));
    this.classificationHead = c.auxParams ? this.child('classification_head', new ClassificationHead(this.encoder.outChannels[this.encoder.outChannels.length - 1], c.auxParams)) : null;
  }

  /** Input sizes must be multiples of this (the encoder's output stride). */
  get outputStride(): number { return this.encoder.outputStride; }
  /** The smallest valid input side: the FPA bottleneck must be >= 8 px for its three 2x poolings. */
  get minInputSize(): number { return this.outputStride * 8; }
  get preprocessing(): Preprocessing { return preprocessingParams(this.config.encoderName); }

  /** Throws a clear error for inputs the network cannot take (wrong rank/channels, size, batch 1 in training). */
  checkInput(x: Tensor): void {
    const op = 'PAN';
    if (x.ndim !== 4) fail(op, `expected input of 4 dims [N, C, H, W], got [${x.shape.join(', ')}]`);
    const [n, ch, h, w] = x.shape;
    if (ch !== this.config.inChannels) fail(op, `expected ${this.config.inChannels} input channels, got input [${x.shape.join(', ')}]`);
    if (!x.isFloatingPoint) fail(op, `expected a floating-point input, got ${x.dtype}`);
    const s = this.outputStride;
    const min = this.minInputSize;
    if (h % s || w % s) {
      const ph = Math.max(min, Math.ceil(h / s) * s);
      const pw = Math.max(min, Math.ceil(w / s) * s);
      fail(op, `input height and width must be divisible by the output stride ${s}, got ${h}x${w}; pad it to ${ph}x${pw} (see padToMultiple)`);
    }
    if (h < min || w < min) fail(op, `input ${h}x${w} is too small: the FPA bottleneck needs at least 8 px, so H and W must be >= ${min} at output stride ${s}`);
    if (this.training && n < 2) fail(op, 'batch size 1 in training mode: BatchNorm needs more than one value per channel on the 1x1 pooled maps; use a batch of 2 or more, or call model.eval()');
  }

  /** Logits [N, classes, H, W] (after the head's activation). */
  forward(x: Tensor): Tensor {
    const { masks, labels } = this.run(x);
    labels?.dispose();
    return masks;
  }

  /** Masks and, with auxParams, the classification head's output. */
  forwardWithAux(x: Tensor): PANOutput {
    return this.run(x);
  }

  /** Forward pass that also returns PAN's attention maps (FPA spatial map and GAU channel weights). */
  forwardWithAttention(x: Tensor): PANOutput & { attention: AttentionTrace } {
    return this.run(x, true) as PANOutput & { attention: AttentionTrace };
  }

  // Intermediates are freed on return: autograd keeps what backward needs on the C++ side.
  private run(x: Tensor, withAttention = false): PANOutput & { attention?: AttentionTrace } {
    this.checkInput(x);
    return tidy(() => {
      const attention: AttentionTrace | undefined = withAttention ? { gau: {} } : undefined;
      const lay = this.layout;
      let input = x;
      if (lay?.mkldnn) input = input.toMkldnn(lay.dtype === 'bfloat16' ? 'bfloat16' : 'float32'); // blocked once, cast on the way
      else if (lay) {
        if (lay.dtype !== x.dtype) input = input.to(lay.dtype);
        if (lay.channelsLast) input = input.contiguous('channelsLast');
      }
      // In the blocked layout the encoder's features stay blocked; the decoder's convolutions return strided tensors.
      const feats = this.encoder.features(input);
      const dec = this.decoder.forward(feats, attention);
      let masks = this.segmentationHead.forward(lay && dec.device === 'cpu' ? dec.to('float32').contiguous() : dec); // a CPU copy's head is float32 NCHW
      const deepest = feats[feats.length - 1];
      let labels = this.classificationHead ? this.classificationHead.forward(lay?.mkldnn ? deepest.toDense() : deepest) : null;
      if (lay) {
        // Callers get float32 in the default layout, whatever ran inside.
        masks = masks.to('float32').contiguous();
        labels = labels?.to('float32') ?? null;
      }
      return attention ? { masks, labels, attention } : { masks, labels };
    });
  }

  /**
   * A copy for fast inference: BatchNorm folded into the convolutions, and by default the fastest
   * layout for its device and dtype (on CPU in float32 and bfloat16: weights packed for oneDNN,
   * encoder activations in its blocked layout). The segmentation head stays float32 NCHW.
   * Inputs and outputs stay float32 NCHW.
   * The copy cannot be trained or saved; keep the original for that.
   * @example
   * const fast = model.optimizedForInference(); // float32, blocked layout on CPU
   * const bf16 = model.optimizedForInference({ dtype: 'bfloat16' }); // blocked layout too
   */
  optimizedForInference(o: InferenceCopyOptions = {}): PAN {
    const op = 'optimizedForInference';
    const dtype = v.oneOf(op, 'dtype', o.dtype ?? 'float32', ['float32', 'bfloat16', 'float16']);
    if (o.layout !== undefined) v.oneOf(op, 'layout', o.layout, ['mkldnn', 'strided']);
    if (o.channelsLast !== undefined) v.bool(op, 'channelsLast', o.channelsLast);
    const dev = this.parameters()[0].device;
    const mkldnn = o.layout === 'mkldnn' || (o.layout === undefined && o.channelsLast === undefined && dev === 'cpu' && mkldnnAvailable() && MKLDNN_DEFAULT_DTYPES.includes(dtype));
    if (mkldnn) {
      if (o.channelsLast !== undefined) fail(op, 'channelsLast applies to the strided layout; drop it or pass layout: \'strided\'');
      if (dev !== 'cpu') fail(op, `the mkldnn layout is CPU-only, but the model is on ${dev}; use layout: 'strided'`);
      if (dtype === 'float16') fail(op, 'the mkldnn layout supports float32 and bfloat16, not float16; use layout: \'strided\'');
      if (!mkldnnAvailable()) fail(op, 'this libtorch was built without oneDNN (mkldnn); use layout: \'strided\'');
    }
    const channelsLast = !mkldnn && (o.channelsLast ?? true);
    // Building the copy initializes weights it then overwrites: keep the caller's random stream untouched.
    const rng = getRngState();
    let m: PAN;
    try {
      m = new PAN({ ...this.config, encoderWeights: null });
      m.loadStateDict(this.stateDict());
      m.eval();
      foldBatchNorms(m);
      m.freeze();
      // On the CPU the head stays float32 and NCHW: libtorch 1.13's bilinear x4 upsampling has no fast
      // reduced-precision kernel (bfloat16: 23 ms vs 5 ms in float32 at 512x512, 21 classes; the head is
      // 0.4% of the work), and upsampling in channels-last and converting its 16x larger output back cost
      // 10 ms. GPUs keep the whole copy in one dtype and layout (as measured there, README 'GPU').
      const cpuHead = dev === 'cpu';
      if (dtype !== 'float32') {
        m.to({ dtype });
        if (cpuHead) m.segmentationHead.to({ dtype: 'float32' });
      }
      if (channelsLast) for (const part of cpuHead ? [m.encoder, m.decoder] : [m]) part.to({ memoryFormat: 'channelsLast' });
      // The encoder's convolutions feed one another: their outputs stay blocked.
      if (mkldnn) packConvsForMkldnn(m, (path) => path.startsWith('encoder.'));
    } finally {
      setRngState(rng);
      rng.dispose();
    }
    if (dev !== 'cpu') m.to({ device: dev });
    m.layout = { mkldnn, channelsLast, dtype };
    return m;
  }

  /** How an inference copy lays out its tensors (null for a trainable model). */
  get inferenceLayout(): Readonly<InferenceLayout> | null { return this.layout; }

  /** True for copies made by optimizedForInference(). */
  get isOptimizedForInference(): boolean { return this.layout !== null; }

  override train(mode = true): this {
    if (mode && this.layout) fail('PAN', 'this copy was optimized for inference (BatchNorm folded); train the original model instead');
    return super.train(mode);
  }

  /** Builds a PAN from an smp `save_pretrained` directory (config.json + model.safetensors). */
  static fromPretrained(dir: string): PAN {
    return PAN.loadPretrained(dir).model;
  }

  /** Like fromPretrained, also returning panseg.json's metadata (class names, colors). */
  static loadPretrained(dir: string): { model: PAN; meta: PansegMeta } {
    const { options, weights, meta, weightsPath } = readPretrained(dir);
    let model: PAN | undefined;
    try {
      model = new PAN(options);
      model.loadStateDict(weights);
      return { model, meta };
    } catch (e) {
      model?.dispose();
      return fail('fromPretrained', `${weightsPath}: ${(e as Error).message}`);
    } finally {
      for (const t of weights.values()) t.dispose();
    }
  }

  /** Writes an smp-compatible directory: config.json, model.safetensors (+ panseg.json with `meta`). */
  savePretrained(dir: string, meta: PansegMeta = {}): void {
    if (this.layout) fail('savePretrained', 'this copy was optimized for inference (BatchNorm folded); save the original model instead');
    writePretrained(dir, smpConfigFromOptions(this.config), this.stateDict(), meta);
  }

  /** Eval mode + inference mode: logits without autograd (restores the previous mode). */
  predict(x: Tensor): Tensor {
    const was = this.training;
    this.eval();
    try { return inferenceMode(() => this.forward(x)); } finally { this.train(was); }
  }
}

/**
 * Pads x [N, C, H, W] at the bottom/right to multiples of `multiple` (zeros, i.e. the mean after
 * normalization); returns the padded tensor and a function that crops outputs back.
 */
export function padToMultiple(x: Tensor, multiple: number, minSize = 0): { padded: Tensor; crop: (y: Tensor) => Tensor } {
  v.int('padToMultiple', 'multiple', multiple, 1);
  const [h, w] = [x.shape[2], x.shape[3]];
  const ph = Math.max(Math.ceil(h / multiple) * multiple, Math.ceil(minSize / multiple) * multiple);
  const pw = Math.max(Math.ceil(w / multiple) * multiple, Math.ceil(minSize / multiple) * multiple);
  const padded = ph === h && pw === w ? x : F.pad(x, [0, pw - w, 0, ph - h]);
  return { padded, crop: (y) => (ph === h && pw === w ? y : y.narrow(2, 0, h).narrow(3, 0, w)) };
}
