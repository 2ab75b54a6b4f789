// Augmentation and preprocessing, in plain JS over typed arrays, deterministic given an Rng.
// Training fuses scale + pad + crop + flip into one sampling pass over the output crop only,
// which equals resizing the whole image and then cropping, at a fraction of the cost.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import type { RgbImage } from './decode.js';
import type { Rng } from './prng.js';

/** ImageNet's channel means on [0, 1] RGB, the default normalization. */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
/** ImageNet's channel standard deviations on [0, 1] RGB. */
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** Colour jitter strengths: each factor is drawn from [1 - s, 1 + s]; 0 turns it off. */
export interface ColorJitter {
  brightness: number;
  contrast: number;
  saturation: number;
}

/** Training augmentation, every field resolved (see {@link trainOptions} for the defaults). */
export interface TrainTransform {
  /** Output [height, width]. */
  crop: [number, number];
  /** The random scale factor's range. */
  scaleRange: [number, number];
  flip: boolean;
  colorJitter: ColorJitter;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** The mask value of padding. */
  ignoreIndex: number;
}

/** Validation / prediction preprocessing, every field resolved (see {@link evalOptions}). */
export interface EvalTransform {
  /** Pad height and width up to multiples of this (ignored when `resize` is set). */
  stride: number;
  /** Resize to exactly [height, width] instead of padding. */
  resize?: [number, number];
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  ignoreIndex: number;
}

/** How an input was made from the original, so a prediction can be mapped back with {@link unpad}. */
export interface PadInfo {
  /** 'pad': the original sits at the top-left, padded bottom/right. 'resize': the original was resized. */
  mode: 'pad' | 'resize';
  /** Original size. */
  height: number;
  width: number;
  /** The network input's size. */
  inputHeight: number;
  inputWidth: number;
}

/** A transformed sample. */
export interface Transformed {
  /** CHW float32, normalized; padding is 0. */
  image: Float32Array;
  /** HW class indices; padding is the ignore index. Null when no mask was given. */
  mask: Uint8Array | null;
  height: number;
  width: number;
  info: PadInfo;
}

type Triple = readonly [number, number, number];

function triple(op: string, name: string, x: unknown, positive: boolean): Triple {
  if (!Array.isArray(x) || x.length !== 3 || !x.every((e) => typeof e === 'number' && Number.isFinite(e) && (!positive || e > 0))) {
    fail(op, `expected three finite${positive ? ' positive' : ''} numbers for ${name} but received ${JSON.stringify(x)}`);
  }
  return [x[0], x[1], x[2]];
}

/** User-facing training options; every field optional. */
export interface TrainOptions {
  /** Crop size, an int or [height, width]. Default 512. */
  crop?: number | [number, number];
  /** Default [0.5, 2.0]. */
  scaleRange?: [number, number];
  /** Random horizontal flip. Default true. */
  flip?: boolean;
  /** One strength for all three, or each; default 0 (off). */
  colorJitter?: number | Partial<ColorJitter>;
  /** Default {@link IMAGENET_MEAN}. */
  mean?: readonly number[];
  /** Default {@link IMAGENET_STD}. */
  std?: readonly number[];
}

/** User-facing evaluation options; every field optional. */
export interface EvalOptions {
  /** Default 32 (PAN's output stride). */
  stride?: number;
  /** Resize to [height, width] (or a square) instead of padding. */
  resize?: number | [number, number];
  mean?: readonly number[];
  std?: readonly number[];
}

/**
 * Validates training options and fills the defaults.
 * @example trainOptions('DataLoader', { crop: 256, colorJitter: 0.2 }, 255)
 */
export function trainOptions(op: string, o: TrainOptions, ignoreIndex: number): TrainTransform {
  const crop = v.pair(op, 'crop', o.crop ?? 512, 1);
  const sr = o.scaleRange ?? [0.5, 2.0];
  if (!Array.isArray(sr) || sr.length !== 2 || !sr.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0) || sr[0] > sr[1]) {
    fail(op, `expected [min, max] with 0 < min <= max for scaleRange but received ${JSON.stringify(sr)}`);
  }
  const cj = o.colorJitter ?? 0;
  const jit: ColorJitter = typeof cj === 'number'
    ? { brightness: cj, contrast: cj, saturation: cj }
    : { brightness: cj.brightness ?? 0, contrast: cj.contrast ?? 0, saturation: cj.saturation ?? 0 };
  for (const [k, x] of Object.entries(jit)) v.num(op, `colorJitter.${k}`, x, { min: 0, max: 1 });
  return {
    crop, scaleRange: [sr[0], sr[1]], flip: v.bool(op, 'flip', o.flip ?? true), colorJitter: jit,
    mean: triple(op, 'mean', o.mean ?? IMAGENET_MEAN, false), std: triple(op, 'std', o.std ?? IMAGENET_STD, true), ignoreIndex,
  };
}

/** Validates evaluation options and fills the defaults. */
export function evalOptions(op: string, o: EvalOptions, ignoreIndex: number): EvalTransform {
  return {
    stride: v.int(op, 'stride', o.stride ?? 32, 1),
    resize: o.resize === undefined ? undefined : v.pair(op, 'resize', o.resize, 1),
    mean: triple(op, 'mean', o.mean ?? IMAGENET_MEAN, false), std: triple(op, 'std', o.std ?? IMAGENET_STD, true), ignoreIndex,
  };
}

// One axis of the fused sampling: output coordinate -> source taps (bilinear) and nearest index.
interface Axis { i0: Int32Array; i1: Int32Array; w: Float32Array; near: Int32Array; valid: Uint8Array }

/**
 * Output position o reads scaled position s = start + (flip ? n-1-o : o); inside the scaled extent `scaled`
 * it maps to source (s + 0.5) * src / scaled - 0.5 (align_corners=False) for bilinear, and
 * floor((s + 0.5) * src / scaled) for the mask (nearest by pixel centre, so mask and image stay aligned).
 */
function axis(n: number, start: number, scaled: number, src: number, flip: boolean): Axis {
  const a: Axis = { i0: new Int32Array(n), i1: new Int32Array(n), w: new Float32Array(n), near: new Int32Array(n), valid: new Uint8Array(n) };
  const r = src / scaled;
  for (let o = 0; o < n; o++) {
    const s = start + (flip ? n - 1 - o : o);
    if (s < 0 || s >= scaled) continue;
    a.valid[o] = 1;
    let f = (s + 0.5) * r - 0.5;
    if (f < 0) f = 0;
    if (f > src - 1) f = src - 1;
    const i = Math.floor(f);
    a.i0[o] = i;
    a.i1[o] = Math.min(i + 1, src - 1);
    a.w[o] = f - i;
    a.near[o] = Math.min(src - 1, Math.floor((s + 0.5) * r));
  }
  return a;
}

// Samples the image into CHW planes in [0, 1] (padding left 0) and the mask (padding = ignore).
function sample(img: RgbImage, mask: Uint8Array | null, ys: Axis, xs: Axis, ignore: number): { planes: Float32Array; mask: Uint8Array | null } {
  const oh = ys.valid.length;
  const ow = xs.valid.length;
  const plane = oh * ow;
  const out = new Float32Array(3 * plane);
  const m = mask ? new Uint8Array(plane).fill(ignore) : null;
  const d = img.data;
  const w = img.width;
  const k = 1 / 255;
  for (let oy = 0; oy < oh; oy++) {
    if (!ys.valid[oy]) continue;
    const r0 = ys.i0[oy] * w;
    const r1 = ys.i1[oy] * w;
    const wy = ys.w[oy];
    const rn = ys.near[oy] * w;
    const row = oy * ow;
    for (let ox = 0; ox < ow; ox++) {
      if (!xs.valid[ox]) continue;
      const c0 = xs.i0[ox];
      const c1 = xs.i1[ox];
      const wx = xs.w[ox];
      const p00 = 3 * (r0 + c0);
      const p01 = 3 * (r0 + c1);
      const p10 = 3 * (r1 + c0);
      const p11 = 3 * (r1 + c1);
      const o = row + ox;
      for (let c = 0; c < 3; c++) {
        const top = d[p00 + c] + (d[p01 + c] - d[p00 + c]) * wx;
        const bot = d[p10 + c] + (d[p11 + c] - d[p10 + c]) * wx;
        out[c * plane + o] = (top + (bot - top) * wy) * k;
      }
      if (m) m[o] = mask![rn + xs.near[ox]];
    }
  }
  return { planes: out, mask: m };
}

// Brightness, contrast (around the mean grey of the valid pixels), saturation; clamped to [0, 1] after each.
function jitter(p: Float32Array, ys: Axis, xs: Axis, b: number, c: number, s: number): void {
  const oh = ys.valid.length;
  const ow = xs.valid.length;
  const plane = oh * ow;
  const clamp = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);
  let mean = 0;
  if (c !== 1) {
    let sum = 0;
    let n = 0;
    for (let y = 0; y < oh; y++) {
      if (!ys.valid[y]) continue;
      for (let x = 0; x < ow; x++) {
        if (!xs.valid[x]) continue;
        const i = y * ow + x;
        sum += clamp(p[i] * b) * 0.299 + clamp(p[plane + i] * b) * 0.587 + clamp(p[2 * plane + i] * b) * 0.114;
        n++;
      }
    }
    mean = n ? sum / n : 0;
  }
  for (let i = 0; i < plane; i++) {
    let r = clamp(p[i] * b);
    let g = clamp(p[plane + i] * b);
    let bl = clamp(p[2 * plane + i] * b);
    if (c !== 1) {
      r = clamp((r - mean) * c + mean);
      g = clamp((g - mean) * c + mean);
      bl = clamp((bl - mean) * c + mean);
    }
    if (s !== 1) {
      const grey = 0.299 * r + 0.587 * g + 0.114 * bl;
      r = clamp(grey + (r - grey) * s);
      g = clamp(grey + (g - grey) * s);
      bl = clamp(grey + (bl - grey) * s);
    }
    p[i] = r;
    p[plane + i] = g;
    p[2 * plane + i] = bl;
  }
}

// (x - mean) / std on valid pixels; padding becomes exactly 0.
function normalize(p: Float32Array, ys: Axis, xs: Axis, mean: Triple, std: Triple): void {
  const oh = ys.valid.length;
  const ow = xs.valid.length;
  const plane = oh * ow;
  for (let c = 0; c < 3; c++) {
    const m = mean[c];
    const is = 1 / std[c];
    const base = c * plane;
    for (let y = 0; y < oh; y++) {
      const vy = ys.valid[y];
      const row = base + y * ow;
      for (let x = 0; x < ow; x++) p[row + x] = vy && xs.valid[x] ? (p[row + x] - m) * is : 0;
    }
  }
}

/**
 * Training augmentation: random scale (image bilinear, mask nearest), pad bottom/right up to the crop
 * when smaller, random crop, random horizontal flip, colour jitter, normalization.
 * Draws a fixed number of values from `rng` in a fixed order (scale, crop y, crop x, flip, brightness,
 * contrast, saturation), so a seed fixes the result whatever the options.
 * @example trainTransform(image, mask, trainOptions('x', { crop: 256 }, 255), new Rng(mixSeed(seed, epoch, index)))
 */
export function trainTransform(img: RgbImage, mask: Uint8Array, t: TrainTransform, rng: Rng): Transformed {
  const { width: w, height: h } = img;
  const [ch, cw] = t.crop;
  const s = rng.uniform(t.scaleRange[0], t.scaleRange[1]);
  const nh = Math.max(1, Math.round(h * s));
  const nw = Math.max(1, Math.round(w * s));
  const y0 = rng.int(Math.max(nh, ch) - ch + 1);
  const x0 = rng.int(Math.max(nw, cw) - cw + 1);
  const flip = rng.next() < 0.5 && t.flip;
  const j = t.colorJitter;
  const bf = 1 + rng.uniform(-j.brightness, j.brightness);
  const cf = 1 + rng.uniform(-j.contrast, j.contrast);
  const sf = 1 + rng.uniform(-j.saturation, j.saturation);
  const ys = axis(ch, y0, nh, h, false);
  const xs = axis(cw, x0, nw, w, flip);
  const r = sample(img, mask, ys, xs, t.ignoreIndex);
  if (bf !== 1 || cf !== 1 || sf !== 1) jitter(r.planes, ys, xs, bf, cf, sf);
  normalize(r.planes, ys, xs, t.mean, t.std);
  return { image: r.planes, mask: r.mask, height: ch, width: cw, info: { mode: 'pad', height: h, width: w, inputHeight: ch, inputWidth: cw } };
}

/**
 * Validation / prediction preprocessing: normalize, then pad bottom/right to multiples of `stride`
 * (image 0, mask ignore) or, with `resize`, resize to that size (mask nearest). Map outputs back with {@link unpad}.
 * @example const { image, info } = evalTransform(img, null, evalOptions('predict', {}, 255))
 */
export function evalTransform(img: RgbImage, mask: Uint8Array | null, t: EvalTransform): Transformed {
  const { width: w, height: h } = img;
  let ys: Axis;
  let xs: Axis;
  let mode: PadInfo['mode'];
  if (t.resize) {
    mode = 'resize';
    ys = axis(t.resize[0], 0, t.resize[0], h, false);
    xs = axis(t.resize[1], 0, t.resize[1], w, false);
  } else {
    mode = 'pad';
    ys = axis(Math.ceil(h / t.stride) * t.stride, 0, h, h, false);
    xs = axis(Math.ceil(w / t.stride) * t.stride, 0, w, w, false);
  }
  const r = sample(img, mask, ys, xs, t.ignoreIndex);
  normalize(r.planes, ys, xs, t.mean, t.std);
  const oh = ys.valid.length;
  const ow = xs.valid.length;
  return { image: r.planes, mask: r.mask, height: oh, width: ow, info: { mode, height: h, width: w, inputHeight: oh, inputWidth: ow } };
}

type Planar = Float32Array | Uint8Array | Int32Array;

/**
 * Maps a network output for an input made by {@link evalTransform} back to the original size:
 * crops the padding away, or (resize mode) resizes back — nearest for integer arrays (labels), bilinear for Float32Array (scores).
 * `data` may be larger than the input (a padded batch): it is read as [channels, rows, cols].
 * @param channels planes in `data` (1 for a label map, C for per-class scores)
 * @param rows rows of `data`, default `info.inputHeight`; `cols` likewise
 * @example const labels = unpad(argmax, info) // Uint8Array of info.height * info.width
 */
export function unpad<T extends Planar>(data: T, info: PadInfo, channels = 1, rows = info.inputHeight, cols = info.inputWidth): T {
  const { height: h, width: w } = info;
  if (data.length !== channels * rows * cols) fail('unpad', `expected ${channels} x ${rows} x ${cols} = ${channels * rows * cols} values but received ${data.length}`);
  const Ctor = data.constructor as { new (n: number): T };
  const out = new Ctor(channels * h * w);
  const src = data as unknown as ArrayLike<number>;
  const dst = out as unknown as { [i: number]: number };
  if (info.mode === 'pad') {
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < h; y++) {
        const from = c * rows * cols + y * cols;
        (out as Planar).set((data as Planar).subarray(from, from + w), c * h * w + y * w);
      }
    }
    return out;
  }
  const ih = info.inputHeight;
  const iw = info.inputWidth;
  const ys = axis(h, 0, h, ih, false);
  const xs = axis(w, 0, w, iw, false);
  const bilinear = data instanceof Float32Array;
  for (let c = 0; c < channels; c++) {
    const base = c * rows * cols;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = c * h * w + y * w + x;
        if (!bilinear) {
          dst[o] = src[base + ys.near[y] * cols + xs.near[x]];
          continue;
        }
        const a = src[base + ys.i0[y] * cols + xs.i0[x]];
        const b = src[base + ys.i0[y] * cols + xs.i1[x]];
        const cc = src[base + ys.i1[y] * cols + xs.i0[x]];
        const d = src[base + ys.i1[y] * cols + xs.i1[x]];
        const top = a + (b - a) * xs.w[x];
        const bot = cc + (d - cc) * xs.w[x];
        dst[o] = top + (bot - top) * ys.w[y];
      }
    }
  }
  return out;
}
