// Turning PAN's attention (captured in the same forward pass as the prediction) into plain
// arrays and a few numbers a student can read: where FPA looks, which channels each GAU lets through.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { evalOptions, evalTransform, type RgbImage } from '../data/index.js';
import { inferenceMode, type Tensor, tensor, tidy } from '../engine/index.js';
import { probsToLabels } from '../eval/inference.js';
import { type AttentionTrace, PAN, padToMultiple, type SegmentationModel } from '../models/index.js';

/** A single-channel map, row-major `width * height` values. */
export interface Map2D {
  width: number;
  height: number;
  values: number[];
}

/** Summary numbers of a set of values. */
export interface Stats {
  min: number;
  max: number;
  mean: number;
  std: number;
}

/** One level of FPA's attention pyramid (see {@link FpaCapture.levels}). */
export interface PyramidLevel extends Map2D {
  /** Which FPA field made it: 'conv1', 'conv2' or 'down3'. */
  name: 'conv1' | 'conv2' | 'down3';
  /** What the level sees, relative to the bottleneck: 2 = pooled once (1/2), 4 = twice, 8 = three times. */
  pooling: 2 | 4 | 8;
  stats: Stats;
}

/** Feature Pyramid Attention on the deepest feature, as numbers. */
export interface FpaCapture {
  /**
   * The spatial attention map: 1 channel at the bottleneck's resolution (1/outputStride of the
   * padded input), the factor that multiplies every channel of the `mid` branch. FPA's output is
   * `attention * mid + globalBranch`.
   */
  attention: Map2D;
  /** Stats of the attention map over the cells that cover the image (padding left out). */
  stats: Stats;
  /**
   * The pyramid levels, in the order the trace gives them: conv1(x1) at 1/2 of the bottleneck (fine),
   * conv2(x2) at 1/4, and down3(x2) (pooled to 1/8) upsampled to 1/4 (coarse). Upsampled and summed,
   * coarse to fine, they are the attention map.
   */
  levels: [PyramidLevel, PyramidLevel, PyramidLevel];
  /** The L2 norm over channels of the mid branch at each bottleneck cell: how strong the local feature is before attention. */
  midNorm: Map2D;
  /** The global-pool branch: one value per decoder channel, added everywhere (image-wide context). */
  globalBranch: number[];
  /**
   * How much of FPA's output, by magnitude, is image-wide context rather than attended local
   * feature: `|globalBranch| / (mean over cells of |attention * mid| + |globalBranch|)`, L2 norms over channels.
   */
  globalShare: number;
}

/** One Global Attention Upsample block, as numbers. */
export interface GauCapture {
  /** 'gau3' (1/16 skip), 'gau2' (1/8) or 'gau1' (1/4), deepest first. */
  name: string;
  /** The input pixels per cell of this block's output (4 for gau1 at output stride 16). */
  stride: number;
  /** The sigmoid channel weights in (0, 1), one per decoder channel. */
  weights: number[];
  /** The channels with the largest weights, largest first (`topK` of them). */
  top: number[];
  stats: Stats & {
    /** Channels the gate nearly closes (weight < 0.1) and nearly opens (weight > 0.9). */
    closed: number;
    open: number;
  };
  /** L2 norm of the deeper feature's global average: the whole-image summary that sets the gate. */
  contextNorm: number;
  /** Mean |conv2(x)| per channel: the low-level feature before gating. */
  lowLevel: number[];
  /** Mean |conv2(x) * weight| per channel: what the gate lets through. */
  gated: number[];
  /** Mean |upsampled deeper feature| per channel: the path the gated detail is added to. */
  upsampled: number[];
  /** sum(gated) / (sum(gated) + sum(upsampled)): the share of this block's output that is gated low-level detail. */
  detailShare: number;
  /** The L2 norm over channels of conv2(x) * weights at each cell: where the gated detail is added. */
  detail: Map2D;
}

/** What {@link explain} returns: PAN's attention for one image, as plain arrays, plus the prediction. */
export interface Explanation {
  model: { encoderName: string; outputStride: number; decoderChannels: number; classes: number };
  /** The image's size. */
  image: { width: number; height: number };
  /** The network input's size: the image padded bottom/right to a valid size. Maps cover this area. */
  input: { width: number; height: number };
  fpa: FpaCapture;
  /** Deepest first (gau3, gau2, gau1; fewer for encoder depth 3 or 4). */
  gau: GauCapture[];
  /** Predicted class per image pixel (row-major, image size). */
  labels: Uint8Array;
}

/** Options of {@link explain}. */
export interface ExplainOptions {
  /** How many channels each GAU lists as most attended. Default 5 (at most the channel count). */
  topK?: number;
}

/**
 * Runs PAN once on an image and returns its attention (FPA's spatial map and pyramid, the global
 * branch, each GAU's channel weights and how much detail they let through) with the prediction of
 * that same pass. The image gets the model's preprocessing and is padded to a valid size; the model
 * runs in eval mode (restored afterwards) without autograd.
 * @example
 * const e = explain(model, await decodeImage('cat.jpg'), { topK: 5 });
 * e.fpa.attention // { width: 20, height: 15, values: [...] } at 1/16 of the input
 * e.gau.map((g) => g.top) // the most attended channels of gau3, gau2, gau1
 */
export function explain(model: SegmentationModel, image: RgbImage, opts: ExplainOptions = {}): Explanation {
  const op = 'explain';
  if (!(model instanceof PAN)) fail(op, `expected a PAN model for model, got a ${model.architecture} (only PAN has attention maps)`);
  checkImage(op, image);
  const channels = model.config.decoderChannels;
  const topK = Math.min(v.int(op, 'topK', opts.topK ?? 5, 1), channels);
  const pre = model.preprocessing;
  const t = evalTransform(image, null, evalOptions(op, { stride: model.outputStride, mean: pre.mean, std: pre.std }, 255));
  const device = model.parameters()[0]?.device ?? 'cpu';
  const was = model.training;
  model.eval();
  try {
    return inferenceMode(() => tidy(() => {
      let x = tensor(t.image, [1, 3, t.info.inputHeight, t.info.inputWidth]);
      if (device !== 'cpu') x = x.to(device);
      const { padded } = padToMultiple(x, model.outputStride, model.minInputSize);
      const [inH, inW] = [padded.shape[2], padded.shape[3]];
      const { masks, attention } = model.forwardWithAttention(padded);
      const probs = masks.shape[1] === 1 ? masks.sigmoid() : masks.softmax(1);
      const labels = probsToLabels(probs.narrow(2, 0, image.height).narrow(3, 0, image.width)).to('uint8').toArray() as Uint8Array;
      const cover = { width: image.width / inW, height: image.height / inH };
      return {
        model: { encoderName: model.config.encoderName, outputStride: model.outputStride, decoderChannels: channels, classes: model.config.classes },
        image: { width: image.width, height: image.height },
        input: { width: inW, height: inH },
        fpa: fpaCapture(attention, cover),
        gau: gauCaptures(attention, topK, inW),
        labels,
      };
    }));
  } finally {
    model.train(was);
  }
}

function checkImage(op: string, img: RgbImage): void {
  if (!img || !(img.data instanceof Uint8Array)) fail(op, 'expected an RgbImage with Uint8Array data for image');
  v.int(op, 'image.width', img.width, 1);
  v.int(op, 'image.height', img.height, 1);
  if (img.data.length !== img.width * img.height * 3) fail(op, `expected ${img.width * img.height * 3} bytes (${img.width}x${img.height}x3) for image.data but received ${img.data.length}`);
}

/** [1, 1, h, w] (or [1, h, w]) -> Map2D, in float32. */
function toMap(t: Tensor): Map2D {
  const [h, w] = t.shape.slice(-2);
  return { width: w, height: h, values: Array.from(t.to('float32').contiguous().toArray() as Float32Array) };
}

/** [1, C, ...] -> number[] of C per-channel values, in float32. */
function toVector(t: Tensor): number[] {
  return Array.from(t.to('float32').contiguous().reshape(-1).toArray() as Float32Array);
}

/** Stats over the top-left `fw * width` x `fh * height` cells (those covering the image, not padding). */
export function mapStats(m: Map2D, fw = 1, fh = 1): Stats {
  const cw = Math.max(1, Math.min(m.width, Math.ceil(m.width * fw - 1e-9)));
  const ch = Math.max(1, Math.min(m.height, Math.ceil(m.height * fh - 1e-9)));
  const vals: number[] = [];
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) vals.push(m.values[y * m.width + x]);
  return stats(vals);
}

export function stats(vals: readonly number[]): Stats {
  if (!vals.length) return { min: NaN, max: NaN, mean: NaN, std: NaN };
  let min = Infinity, max = -Infinity, sum = 0;
  for (const x of vals) { if (x < min) min = x; if (x > max) max = x; sum += x; }
  const mean = sum / vals.length;
  let ss = 0;
  for (const x of vals) ss += (x - mean) ** 2;
  return { min, max, mean, std: Math.sqrt(ss / vals.length) };
}

function fpaCapture(trace: AttentionTrace, cover: { width: number; height: number }): FpaCapture {
  const f = trace.fpa;
  if (!f) return fail('explain', 'the model returned no FPA trace');
  const attention = toMap(f.attention.narrow(0, 0, 1));
  const [c1, c2, x3] = f.levels.map((l) => toMap(l.narrow(0, 0, 1)));
  const level = (m: Map2D, name: PyramidLevel['name'], pooling: PyramidLevel['pooling']): PyramidLevel => ({ ...m, name, pooling, stats: mapStats(m, cover.width, cover.height) });
  const b1 = f.globalBranch.narrow(0, 0, 1).narrow(2, 0, 1).narrow(3, 0, 1); // constant over space
  const globalBranch = toVector(b1);
  const mid = f.mid?.narrow(0, 0, 1);
  const midNorm = mid ? toMap(mid.norm(1)) : { ...attention, values: attention.values.map(() => NaN) };
  const attended = tidy(() => (mid ? f.attention.narrow(0, 0, 1).mul(mid).norm(1).mean().item() : NaN));
  const g = tidy(() => b1.norm().item());
  return {
    attention,
    stats: mapStats(attention, cover.width, cover.height),
    levels: [level(c1, 'conv1', 2), level(c2, 'conv2', 4), level(x3, 'down3', 8)],
    midNorm,
    globalBranch,
    globalShare: g + attended > 0 ? g / (g + attended) : NaN,
  };
}

function gauCaptures(trace: AttentionTrace, topK: number, inputWidth: number): GauCapture[] {
  return Object.entries(trace.gau).map(([name, w]) => {
    const weights = toVector(w.narrow(0, 0, 1));
    const order = weights.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i);
    const s = stats(weights);
    const cap: GauCapture = {
      name, stride: NaN, weights, top: order.slice(0, topK),
      stats: { ...s, closed: weights.filter((x) => x < 0.1).length, open: weights.filter((x) => x > 0.9).length },
      contextNorm: NaN, lowLevel: [], gated: [], upsampled: [], detailShare: NaN, detail: { width: 0, height: 0, values: [] },
    };
    const p = trace.gauParts?.[name];
    if (!p) return cap;
    return tidy(() => {
      const low = p.lowLevel.narrow(0, 0, 1);
      const gated = low.mul(w.narrow(0, 0, 1));
      const lowLevel = toVector(low.abs().mean([2, 3]));
      const gatedMag = toVector(gated.abs().mean([2, 3]));
      const upsampled = toVector(p.upsampled.narrow(0, 0, 1).abs().mean([2, 3]));
      const sg = gatedMag.reduce((a, b) => a + b, 0);
      const su = upsampled.reduce((a, b) => a + b, 0);
      return {
        ...cap,
        stride: inputWidth / low.shape[3],
        contextNorm: p.deep.narrow(0, 0, 1).mean([2, 3]).norm().item(),
        lowLevel, gated: gatedMag, upsampled,
        detailShare: sg + su > 0 ? sg / (sg + su) : NaN,
        detail: toMap(gated.norm(1)),
      };
    });
  });
}
