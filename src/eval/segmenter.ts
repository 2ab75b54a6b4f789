// Inference written once for both engines: padding to a valid size, test-time augmentation (scales and
// flips), probabilities from logits, and labels. An engine only supplies logits for a padded batch:
// a libtorch model (modelSource) or an ONNX export in onnxruntime (OnnxSegmenter). Large images can be
// segmented in overlapping windows (tiles.ts) or at a smaller scale (resizeLong), then brought back to size.
import { paddedSize } from '../common/input-size.js';
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { autocast, F, full, inferenceMode, keep, type Precision, resolvePrecision, type Tensor, tidy } from '../engine/index.js';
import type { Preprocessing, SegmentationModel } from '../models/index.js';
import { GraphedForward } from './graphed-forward.js';
import { blendWindows, checkTiling, driveAsync, driveSync, type Rect } from './tiles.js';

export interface InferenceOptions {
  /** Average with the horizontally flipped input. Default false. */
  flip?: boolean;
  /** Input scales to average (e.g. [0.75, 1, 1.25]); default [1]. */
  scales?: number[];
  /**
   * Compute precision on the libtorch engine. 'auto' (default) is bf16 on CPUs with AMX or AVX512-BF16 and
   * fp32 elsewhere; bf16/fp16 run convolutions under autocast (or in a model copy made by inferenceCopy).
   */
  precision?: Precision | 'auto';
  /**
   * Sliding-window inference: segment in windows of this many pixels a side (rounded up to a size the
   * model takes), blended where they overlap, so memory does not grow with the image (see tiles.ts).
   * Images no larger than a window run whole. Default: none, the whole image at once.
   */
  tile?: number;
  /** Fraction of a window its neighbours share, in [0, 0.9]. Default 0.25 (with `tile`). */
  overlap?: number;
  /**
   * Infer with the image resized (bilinear) so its longer side is this many pixels, e.g. the training
   * scale, then resize the probabilities back (bilinear) before the argmax. Default: the image's own size.
   */
  resizeLong?: number;
  /**
   * Replay the model's forward from CUDA graphs, one per input shape (graphed-forward.ts): fewer kernel
   * launches for small batches of fixed size. A shape is captured when seen a second time; up to 4 are kept.
   * Needs a model on a CUDA device (evaluate, predictFiles and segment; not the ONNX engine). Default false.
   */
  cudaGraphs?: boolean;
}

/** The checked size options of InferenceOptions: tiling and resizing, either may be null. */
export interface SizeOptions {
  tile: { tile: number; overlap: number } | null;
  resizeLong: number | null;
}

export function checkSizeOptions(op: string, o: InferenceOptions): SizeOptions {
  return {
    tile: checkTiling(op, o.tile, o.overlap),
    resizeLong: o.resizeLong === undefined || o.resizeLong === 0 ? null : v.int(op, 'resizeLong', o.resizeLong, 1),
  };
}

/** h x w scaled so the longer side is `long` (aspect kept, sides at least 1). */
export function resizedSize(h: number, w: number, long: number): [number, number] {
  const s = long / Math.max(h, w);
  return [Math.max(1, Math.round(h * s)), Math.max(1, Math.round(w * s))];
}

/** The window size for `tile` on this engine: `tile` rounded up to a size the model takes (a fixed-size export: its size). */
export function windowSize(src: LogitsSource, tile: number): [number, number] {
  return src.paddedSize(tile, tile);
}

/** What the Segmenter needs from an engine. */
export interface LogitsSource {
  /** Channels of the logits (1 = binary, thresholded at 0.5 after a sigmoid). */
  readonly numClasses: number;
  /** The output activation baked into the model (smp's `activation`), or null for raw logits. */
  readonly activation: string | null;
  readonly outputStride: number;
  readonly preprocessing: Pick<Preprocessing, 'mean' | 'std'>;
  /** The size an h x w input is padded to. */
  paddedSize(h: number, w: number): [number, number];
  /** Float32 logits [N, K, H, W] for a batch already at a padded size. */
  logits(x: Tensor): Tensor | Promise<Tensor>;
}

/** Runs `fn` under autocast for bf16/fp16, or plainly for fp32. */
export function withPrecision<T>(precision: Precision | 'auto', device: string, fn: () => T): T {
  precision = resolvePrecision(precision, device);
  if (precision === 'fp32') return fn();
  return autocast(fn, { deviceType: device.startsWith('cuda') ? 'cuda' : 'cpu', dtype: precision === 'bf16' ? 'bfloat16' : 'float16' });
}

/**
 * A BatchNorm-folded copy of `model` in the given precision and its fastest layout (see
 * SegmentationModel.optimizedForInference), for repeated inference (evaluation, prediction, serving). Dispose it when done.
 */
export function inferenceCopy<M extends SegmentationModel>(model: M, precision: Precision | 'auto' = 'auto'): M {
  const p = resolvePrecision(precision, model.parameters()[0].device);
  return model.optimizedForInference({ dtype: p === 'bf16' ? 'bfloat16' : p === 'fp16' ? 'float16' : 'float32' });
}

/**
 * A libtorch model as a LogitsSource: eval mode, no autograd, inputs moved to its device. With `graphs`
 * (see openSource's cudaGraphs) the forward is replayed from CUDA graphs; close them when done.
 */
export function modelSource(model: SegmentationModel, precision: Precision | 'auto' = 'auto', graphs: { cudaGraphs?: boolean } = {}): LogitsSource & { close(): void } {
  // An optimized copy already holds its precision in its weights.
  const p = model.isOptimizedForInference ? 'fp32' : precision;
  const device = model.parameters()[0].device;
  const forward = (x: Tensor): Tensor => withPrecision(p, device, () => model.forward(x)).to('float32');
  const graphed = graphs.cudaGraphs ? new GraphedForward(forward, device) : null;
  return {
    close: () => graphed?.close(),
    numClasses: model.config.classes,
    activation: model.config.activation,
    outputStride: model.inputSizeRule.stride,
    preprocessing: model.preprocessing,
    paddedSize: (h, w) => paddedSize(h, w, model.inputSizeRule),
    logits: (x) => {
      const was = model.training;
      model.eval();
      try {
        return inferenceMode(() => tidy(() => {
          const xd = x.device === device ? x : x.to(device);
          return graphed ? graphed.run(xd) : forward(xd);
        }));
      } finally {
        model.train(was);
      }
    },
  };
}

/** One test-time view: the padded input, its unpadded size, and whether it was flipped. */
interface View { input: Tensor; h: number; w: number; flipped: boolean }

function views(src: LogitsSource, x: Tensor, o: InferenceOptions): View[] {
  const [h, w] = [x.shape[2], x.shape[3]];
  const out: View[] = [];
  for (const s of o.scales ?? [1]) {
    const xs = s === 1 ? x : F.interpolate(x, { size: [Math.max(1, Math.round(h * s)), Math.max(1, Math.round(w * s))], mode: 'bilinear', alignCorners: false });
    const [sh, sw] = [xs.shape[2], xs.shape[3]];
    const [ph, pw] = src.paddedSize(sh, sw);
    for (const flipped of o.flip ? [false, true] : [false]) {
      const v = flipped ? xs.flip(3) : xs;
      out.push({ input: ph === sh && pw === sw ? v : F.pad(v, [0, pw - sw, 0, ph - sh]), h: sh, w: sw, flipped });
    }
  }
  return out;
}

/** Crops each view's logits back, turns them into probabilities, undoes flips and scales, and averages. */
function combine(src: LogitsSource, h: number, w: number, vs: View[], logits: Tensor[]): Tensor {
  let acc: Tensor | null = null;
  vs.forEach((v, i) => {
    let p = toProbs(src, logits[i].narrow(2, 0, v.h).narrow(3, 0, v.w));
    if (v.flipped) p = p.flip(3);
    if (v.h !== h || v.w !== w) p = F.interpolate(p, { size: [h, w], mode: 'bilinear', alignCorners: false });
    acc = acc ? acc.add(p) : p;
  });
  return acc!.div(vs.length);
}

/**
 * Probabilities from the model's output: logits get softmax (sigmoid for a single class); a model built
 * with an output activation already gives probabilities (or log-probabilities, or tanh scores).
 */
function toProbs(src: LogitsSource, out: Tensor): Tensor {
  switch (src.activation) {
    case 'sigmoid': case 'softmax': case 'softmax2d': return out;
    case 'logsoftmax': return out.exp();
    case 'tanh': return out.add(1).div(2); // = sigmoid(2x): same ranking, 0.5 still means logit 0
    default: return src.numClasses === 1 ? out.sigmoid() : out.softmax(1);
  }
}

/** probsSync without tiling or resizing: the whole input at once. */
function wholeSync(src: LogitsSource, x: Tensor, o: InferenceOptions): Tensor {
  return inferenceMode(() => tidy(() => {
    const vs = views(src, x, o);
    return combine(src, x.shape[2], x.shape[3], vs, vs.map((v) => src.logits(v.input) as Tensor));
  }));
}

/** probs without tiling or resizing. */
async function wholeAsync(src: LogitsSource, x: Tensor, o: InferenceOptions): Promise<Tensor> {
  const vs = tidy(() => views(src, x, o));
  const logits: Tensor[] = [];
  try {
    for (const v of vs) logits.push(await src.logits(v.input));
    return inferenceMode(() => tidy(() => combine(src, x.shape[2], x.shape[3], vs, logits)));
  } finally {
    for (const v of vs) if (v.input !== x) v.input.dispose();
    for (const l of logits) l.dispose();
  }
}

/** A view of window r of x [N, C, H, W]. */
export function windowOf(x: Tensor, r: Rect): Tensor {
  return tidy(() => x.narrow(2, r.y, r.height).narrow(3, r.x, r.width));
}

/** Collects the blocks of a sliding-window pass into one [N, K, H, W] tensor (made at the first block). */
class Assembly {
  out: Tensor | null = null;
  constructor(private readonly h: number, private readonly w: number) {}
  readonly add = (y: number, x: number, block: Tensor): void => {
    this.out ??= keep(full([block.shape[0], block.shape[1], this.h, this.w], 0, { device: block.device }));
    tidy(() => { this.out!.narrow(2, y, block.shape[2]).narrow(3, x, block.shape[3]).copy_(block); });
  };
}

/** The input resized for `resizeLong` (or x itself). */
function resizedInput(x: Tensor, long: number | null): Tensor {
  if (long === null) return x;
  const [h, w] = resizedSize(x.shape[2], x.shape[3], long);
  if (h === x.shape[2] && w === x.shape[3]) return x;
  return inferenceMode(() => tidy(() => F.interpolate(x, { size: [h, w], mode: 'bilinear', alignCorners: false })));
}

/** p resized back to h x w (or p itself), disposing p. */
function restoreSize(p: Tensor, h: number, w: number): Tensor {
  if (p.shape[2] === h && p.shape[3] === w) return p;
  try { return inferenceMode(() => tidy(() => F.interpolate(p, { size: [h, w], mode: 'bilinear', alignCorners: false }))); } finally { p.dispose(); }
}

/**
 * Class probabilities [N, classes, H, W] for normalized images [N, C, H, W] of any size, with an engine
 * whose logits are synchronous (libtorch): each scale is padded to a valid size and cropped back, flips are averaged;
 * with `tile`, windows are blended; with `resizeLong`, the input is resized and the probabilities resized back.
 * The result is the whole [N, K, H, W]: for images too large for that, segment() keeps only labels.
 */
export function probsSync(src: LogitsSource, x: Tensor, o: InferenceOptions = {}): Tensor {
  const so = checkSizeOptions('probs', o);
  if (!so.tile && !so.resizeLong) return wholeSync(src, x, o);
  const xs = resizedInput(x, so.resizeLong);
  try {
    let p: Tensor;
    if (!so.tile) p = wholeSync(src, xs, o);
    else {
      const [th, tw] = windowSize(src, so.tile.tile);
      const a = new Assembly(xs.shape[2], xs.shape[3]);
      try {
        driveSync(blendWindows(xs.shape[2], xs.shape[3], th, tw, so.tile.overlap, a.add), (r) => {
          const win = windowOf(xs, r);
          try { return wholeSync(src, win, o); } finally { win.dispose(); }
        });
      } catch (e) { a.out?.dispose(); throw e; }
      p = a.out!;
    }
    return restoreSize(p, x.shape[2], x.shape[3]);
  } finally {
    if (xs !== x) xs.dispose();
  }
}

/** probsSync for any engine, onnxruntime's included. */
export async function probs(src: LogitsSource, x: Tensor, o: InferenceOptions = {}): Promise<Tensor> {
  const so = checkSizeOptions('probs', o);
  if (!so.tile && !so.resizeLong) return wholeAsync(src, x, o);
  const xs = resizedInput(x, so.resizeLong);
  try {
    let p: Tensor;
    if (!so.tile) p = await wholeAsync(src, xs, o);
    else {
      const [th, tw] = windowSize(src, so.tile.tile);
      const a = new Assembly(xs.shape[2], xs.shape[3]);
      try {
        await driveAsync(blendWindows(xs.shape[2], xs.shape[3], th, tw, so.tile.overlap, a.add), async (r) => {
          const win = windowOf(xs, r);
          try { return await wholeAsync(src, win, o); } finally { win.dispose(); }
        });
      } catch (e) { a.out?.dispose(); throw e; }
      p = a.out!;
    }
    return restoreSize(p, x.shape[2], x.shape[3]);
  } finally {
    if (xs !== x) xs.dispose();
  }
}

/** Class indices [N, H, W] (int64) from probabilities; a single-class model thresholds at 0.5. */
export function probsToLabels(p: Tensor): Tensor {
  return tidy(() => (p.shape[1] === 1 ? p.squeeze(1).gt(0.5).to('int64') : p.argmax(1)));
}

/** What evaluate, predictFiles and segment take: a libtorch model, or an engine such as OnnxSegmenter. */
export type Segmentable = SegmentationModel | LogitsSource;

/**
 * A LogitsSource for `m`. A trainable model runs as a BatchNorm-folded inference copy in `precision`
 * (made here; `close` frees it); an inference copy or another engine runs as it is.
 */
export function openSource(m: Segmentable, precision: Precision | 'auto' = 'auto', cudaGraphs = false): { src: LogitsSource; close: () => void } {
  if (!isModel(m)) {
    if (cudaGraphs) fail('cudaGraphs', 'CUDA graphs replay a libtorch model; the ONNX engine cannot use them, drop cudaGraphs (--cuda-graphs)');
    return { src: m, close: () => {} };
  }
  if (m.isOptimizedForInference) {
    const src = modelSource(m, 'auto', { cudaGraphs });
    return { src, close: () => src.close() };
  }
  const copy = inferenceCopy(m, precision);
  try {
    const src = modelSource(copy, 'auto', { cudaGraphs });
    return { src, close: () => { src.close(); copy.dispose(); } };
  } catch (e) { copy.dispose(); throw e; }
}

function isModel(m: Segmentable): m is SegmentationModel {
  return typeof (m as SegmentationModel).optimizedForInference === 'function';
}
