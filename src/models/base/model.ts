// SegmentationModel: encoder -> decoder -> segmentation head (+ aux classification head), as smp's
// base/model.py. An architecture only builds its decoder and heads; input checks, forward, predict,
// inference copies and save/load live here once.
import { checkInputSize, type InputSizeRule, paddedSize } from '../../common/input-size.js';
import { fail } from '../../common/errors.js';
import * as v from '../../common/validate.js';
import { cpuFeatures, F, getRngState, inferenceMode, mkldnnAvailable, setRngState, type Tensor, tidy } from '../../engine/index.js';
import { Module } from '../../nn/index.js';
import { createEncoder, type Encoder, type OutputStride, type Preprocessing, preprocessingParams } from '../encoders/index.js';
import { loadEncoderWeights } from '../encoders/weights.js';
import { type ArchitectureSpec, optionsFromSmp, type ResolvedCommon, resolveOptions, smpConfig } from './config.js';
import { foldBatchNorms, packConvsForMkldnn } from './fuse.js';
import { ClassificationHead, SegmentationHead } from './heads.js';
import { type PansegMeta, readPretrained, writePretrained } from './pretrained.js';

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
   * measured fastest (CPU, float32 or bfloat16, a oneDNN libtorch, an encoder that prefers it) unless
   * channelsLast is given, else 'strided'.
   */
  layout?: 'mkldnn' | 'strided';
  /** NHWC memory order for the strided layout. Default true (faster on CPU than NCHW). */
  channelsLast?: boolean;
}

/**
 * Whether the default CPU copy in `dtype` uses the blocked layout, as measured with bench/models.ts: float32
 * always (0.5-0.8x the channels-last copy's time); bfloat16 only on AMX, where oneDNN's blocked bf16 kernels
 * won (README, Inference speed). With AVX512-BF16 alone (AMD EPYC, 2 threads, 512x512) channels-last won
 * or tied: Unet 182 vs 207 ms, DeepLabV3 466 vs 521, DeepLabV3+ 182 vs 199, PAN 153 vs 151, PSPNet 68 vs 67.
 */
function blockedByDefault(dtype: InferenceDtype): boolean {
  return dtype === 'float32' || (dtype === 'bfloat16' && cpuFeatures().amx);
}

/** Outputs of a forward pass with the auxiliary head. */
export interface SegmentationOutput {
  /** Logits (after the activation, if any) [N, classes, H, W]. */
  masks: Tensor;
  /** Classification head output [N, auxClasses], when auxParams is set. */
  labels: Tensor | null;
}

/** What the base needs of a decoder: the encoder's features in, one map for the head out. */
export interface Decoder extends Module {
  /** features = [input, 1/2, 1/4, ...] as Encoder.features returns them. */
  forward(features: Tensor[]): Tensor;
  /**
   * True when the decoder takes oneDNN-blocked encoder features (every op it applies to them first has a
   * blocked kernel: convolution, pooling). Others receive ordinary tensors in a blocked-layout copy.
   */
  readonly acceptsBlockedFeatures?: boolean;
}

/** How the base builds the segmentation head. */
export interface HeadOptions {
  /** The decoder's output channels. */
  inChannels: number;
  /** Bilinear upsampling after the conv (default 1). */
  upsampling?: number;
  /** Default 3, as smp's SegmentationHead. */
  kernelSize?: number;
}

/**
 * The base of every architecture. Subclasses call `super(spec, options)` (which builds the encoder),
 * then `setDecoder(decoder, head)`.
 * @example
 * const model = createModel('unet', { encoderName: 'resnet34', classes: 21 });
 * const logits = model.predict(x); // [N, 21, H, W]
 */
export abstract class SegmentationModel<R extends ResolvedCommon = ResolvedCommon> extends Module {
  readonly spec: ArchitectureSpec<R>;
  readonly config: R;
  readonly encoder: Encoder;
  decoder!: Decoder;
  segmentationHead!: SegmentationHead;
  classificationHead: ClassificationHead | null = null;

  /** Set on copies made by optimizedForInference(). */
  protected layout: InferenceLayout | null = null;

  protected constructor(spec: ArchitectureSpec<R>, options: Partial<R> = {}) {
    super();
    this.spec = spec;
    const c = (this.config = resolveOptions(spec, options));
    const outputStride = ((c as Record<string, unknown>).encoderOutputStride ?? 32) as OutputStride;
    this.encoder = this.child('encoder', createEncoder(c.encoderName, { inChannels: c.inChannels, depth: c.encoderDepth as 3 | 4 | 5, outputStride }));
    // A registered name ('imagenet') comes from the Hub's cache (downloaded once); anything else is a file path.
    if (c.encoderWeights !== null) loadEncoderWeights(this.encoder, c.encoderName, c.encoderWeights);
  }

  /** Registers the decoder, the segmentation head and, with auxParams, the classification head (smp's order). */
  protected setDecoder(decoder: Decoder, head: HeadOptions): void {
    const c = this.config;
    this.decoder = this.child('decoder', decoder);
    this.segmentationHead = this.child('segmentation_head', new SegmentationHead(head.inChannels, c.classes, { upsampling: head.upsampling ?? 1, kernelSize: head.kernelSize ?? 3, activation: c.activation }));
    const deepest = this.encoder.outChannels[this.encoder.outChannels.length - 1];
    this.classificationHead = c.auxParams ? this.child('classification_head', new ClassificationHead(deepest, c.auxParams)) : null;
  }

  /** smp's class name ('PAN', 'Unet', ...). */
  get architecture(): string { return this.spec.name; }
  /** Input sizes must be multiples of this (the encoder's output stride). */
  get outputStride(): number { return this.encoder.outputStride; }
  /** The smallest valid input side (the output stride unless the architecture needs more). */
  get minInputSize(): number { return this.outputStride; }
  /** Why minInputSize exceeds the stride, for error messages ('' when it does not). */
  protected get minInputSizeReason(): string { return ''; }
  /** The valid-size rule, for padding and checks (see common/input-size.ts). */
  get inputSizeRule(): InputSizeRule { return { stride: this.outputStride, min: this.minInputSize }; }
  get preprocessing(): Preprocessing { return preprocessingParams(this.config.encoderName); }

  /** Throws a clear error for inputs the network cannot take (wrong rank/channels, size, batch 1 in training). */
  checkInput(x: Tensor): void {
    const op = this.spec.name;
    if (x.ndim !== 4) fail(op, `expected input of 4 dims [N, C, H, W], got [${x.shape.join(', ')}]`);
    const [n, ch, h, w] = x.shape;
    if (ch !== this.config.inChannels) fail(op, `expected ${this.config.inChannels} input channels, got input [${x.shape.join(', ')}]`);
    if (!x.isFloatingPoint) fail(op, `expected a floating-point input, got ${x.dtype}`);
    checkInputSize(op, h, w, this.inputSizeRule, this.minInputSizeReason);
    if (this.training && n < 2) fail(op, 'batch size 1 in training mode: BatchNorm needs more than one value per channel; use a batch of 2 or more, or call model.eval()');
  }

  /** Logits [N, classes, H, W] (after the head's activation). */
  forward(x: Tensor): Tensor {
    const { masks, labels } = this.run(x);
    labels?.dispose();
    return masks;
  }

  /** Masks and, with auxParams, the classification head's output. */
  forwardWithAux(x: Tensor): SegmentationOutput {
    return this.run(x);
  }

  /**
   * The whole pass; `decode` replaces the decoder call (PAN passes one that records attention into
   * `keep`, whose tensors outlive the pass). Intermediates are freed on return: autograd keeps what
   * backward needs on the C++ side.
   */
  protected run(x: Tensor, decode: (features: Tensor[]) => Tensor = (f) => this.decoder.forward(f), keep?: object): SegmentationOutput {
    this.checkInput(x);
    return tidy(() => {
      const lay = this.layout;
      let input = x;
      if (lay?.mkldnn) input = input.toMkldnn(lay.dtype === 'bfloat16' ? 'bfloat16' : 'float32'); // blocked once, cast on the way
      else if (lay) {
        if (lay.dtype !== x.dtype) input = input.to(lay.dtype);
        if (lay.channelsLast) input = input.contiguous('channelsLast');
      }
      // In the blocked layout the encoder's features stay blocked; the decoder's convolutions return strided tensors.
      let feats = this.encoder.features(input);
      const deepest = feats[feats.length - 1];
      if (lay?.mkldnn && !this.decoder.acceptsBlockedFeatures) feats = feats.map((f, i) => (i === 0 ? (lay.dtype === x.dtype ? x : x.to(lay.dtype)) : f.toDense()));
      const dec = decode(feats);
      let masks = this.segmentationHead.forward(lay && dec.device === 'cpu' ? dec.to('float32').contiguous() : dec); // a CPU copy's head is float32 NCHW
      let labels = this.classificationHead ? this.classificationHead.forward(deepest.isMkldnn ? deepest.toDense() : deepest) : null;
      if (lay) {
        // Callers get float32 in the default layout, whatever ran inside.
        masks = masks.to('float32').contiguous();
        labels = labels?.to('float32') ?? null;
      }
      return { masks, labels, keep };
    }) as SegmentationOutput;
  }

  /** Eval mode + inference mode: logits without autograd (restores the previous mode). */
  predict(x: Tensor): Tensor {
    const was = this.training;
    this.eval();
    try { return inferenceMode(() => this.forward(x)); } finally { this.train(was); }
  }

  /**
   * A copy for fast inference: BatchNorm folded into the convolutions, and by default the fastest
   * layout for its device and dtype (on CPU in float32 and bfloat16: weights packed for oneDNN,
   * encoder activations in its blocked layout). The segmentation head stays float32 NCHW.
   * Inputs and outputs stay float32 NCHW. The copy cannot be trained or saved; keep the original for that.
   * @example
   * const fast = model.optimizedForInference(); // float32, blocked layout on CPU
   * const bf16 = model.optimizedForInference({ dtype: 'bfloat16' });
   */
  optimizedForInference(o: InferenceCopyOptions = {}): this {
    const op = 'optimizedForInference';
    const dtype = v.oneOf(op, 'dtype', o.dtype ?? 'float32', ['float32', 'bfloat16', 'float16']);
    if (o.layout !== undefined) v.oneOf(op, 'layout', o.layout, ['mkldnn', 'strided']);
    if (o.channelsLast !== undefined) v.bool(op, 'channelsLast', o.channelsLast);
    const dev = this.parameters()[0].device;
    const mkldnn = o.layout === 'mkldnn' || (o.layout === undefined && o.channelsLast === undefined && dev === 'cpu' && mkldnnAvailable()
      && blockedByDefault(dtype) && this.encoder.prefersBlockedLayout !== false);
    if (mkldnn) {
      if (o.channelsLast !== undefined) fail(op, 'channelsLast applies to the strided layout; drop it or pass layout: \'strided\'');
      if (dev !== 'cpu') fail(op, `the mkldnn layout is CPU-only, but the model is on ${dev}; use layout: 'strided'`);
      if (dtype === 'float16') fail(op, 'the mkldnn layout supports float32 and bfloat16, not float16; use layout: \'strided\'');
      if (!mkldnnAvailable()) fail(op, 'this libtorch was built without oneDNN (mkldnn); use layout: \'strided\'');
    }
    const channelsLast = !mkldnn && (o.channelsLast ?? true);
    // Building the copy initializes weights it then overwrites: keep the caller's random stream untouched.
    const rng = getRngState();
    let m: this;
    try {
      m = this.spec.create({ ...this.config, encoderWeights: null }) as this;
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
    if (mode && this.layout) fail(this.spec.name, 'this copy was optimized for inference (BatchNorm folded); train the original model instead');
    return super.train(mode);
  }

  /** smp's config.json for this model (snake_case options + `_model_class`). */
  smpConfig(): Record<string, unknown> {
    return smpConfig(this.spec, this.config);
  }

  /** Writes an smp-compatible directory: config.json, model.safetensors (+ panseg.json with `meta`). */
  savePretrained(dir: string, meta: PansegMeta = {}): void {
    if (this.layout) fail('savePretrained', 'this copy was optimized for inference (BatchNorm folded); save the original model instead');
    writePretrained(dir, this.smpConfig(), this.stateDict(), meta);
  }
}

/**
 * Builds `spec`'s model from an smp `save_pretrained` directory and loads its weights (the registry's
 * loadModel picks the spec from `_model_class`). Also returns panseg.json's metadata.
 */
export function loadPretrainedAs<R extends ResolvedCommon>(spec: ArchitectureSpec<R>, dir: string, files = readPretrained(dir)): { model: SegmentationModel<R>; meta: PansegMeta } {
  const { config, configPath, weights, weightsPath, meta, modelClass } = files;
  let model: SegmentationModel<R> | undefined;
  try {
    if (modelClass !== undefined && modelClass !== spec.name) fail('fromPretrained', `${configPath}: _model_class is '${modelClass}', not ${spec.name}; load it with loadModel(dir)`);
    model = spec.create(optionsFromSmp(spec, config, configPath));
    model.loadStateDict(weights);
    return { model, meta };
  } catch (e) {
    model?.dispose();
    const msg = (e as Error).message;
    return fail('fromPretrained', msg.startsWith('fromPretrained: ') ? msg.slice(16) : `${weightsPath}: ${msg}`);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}

/**
 * Pads x [N, C, H, W] at the bottom/right to multiples of `multiple` (zeros, i.e. the mean after
 * normalization); returns the padded tensor and a function that crops outputs back.
 */
export function padToMultiple(x: Tensor, multiple: number, minSize = 0): { padded: Tensor; crop: (y: Tensor) => Tensor } {
  v.int('padToMultiple', 'multiple', multiple, 1);
  const [h, w] = [x.shape[2], x.shape[3]];
  const [ph, pw] = paddedSize(h, w, { stride: multiple, min: minSize });
  const padded = ph === h && pw === w ? x : F.pad(x, [0, pw - w, 0, ph - h]);
  return { padded, crop: (y) => (ph === h && pw === w ? y : y.narrow(2, 0, h).narrow(3, 0, w)) };
}
