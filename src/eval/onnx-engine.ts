// Inference on an exported PAN with onnxruntime-node: the same preprocessing, padding, test-time
// augmentation and outputs as the libtorch path (predictProbs / segmentImage / predictFiles / evaluate),
// on plain Float32Arrays. onnxruntime-node is loaded on first use, so the torch path never pays for it.
import type * as Ort from 'onnxruntime-node';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import * as v from '../common/validate.js';
import { type DataLoader, evalOptions, evalTransform, type RgbImage } from '../data/index.js';
import { type OnnxSidecar, readSidecar } from '../export/sidecar.js';
import type { EvaluationResult } from './evaluate.js';
import { ConfusionMatrix } from './metrics.js';
import { collectInputs, defaultLabels, type PredictedFile, type Segmentation, writePredictions } from './predict.js';

export interface OnnxSegmenterOptions {
  /** onnxruntime intra-op threads; default: onnxruntime's choice (one per core). */
  threads?: number;
  /** Execution providers in order of preference; default ['cpu']. ['cuda', 'cpu'] needs the CUDA install (see README). */
  executionProviders?: string[];
  /** The model's sidecar; default: read from `<path>.json`. */
  sidecar?: OnnxSidecar;
}

/** Test-time augmentation, as InferenceOptions on the torch path. */
export interface OnnxInferenceOptions {
  /** Average with the horizontally flipped input. Default false. */
  flip?: boolean;
  /** Input scales to average (bilinear, align_corners=False, as the torch path); default [1]. */
  scales?: number[];
}

type Dims4 = [number, number, number, number];

/**
 * A PAN exported by `exportOnnx`, run by onnxruntime-node.
 * @example
 * const seg = await OnnxSegmenter.create('pan.onnx', { threads: 2 });
 * const probs = await seg.probs(images, [1, 3, 375, 500]); // Float32Array [1, classes, 375, 500]
 * await seg.release();
 */
export class OnnxSegmenter {
  private constructor(private readonly ort: typeof Ort, private readonly session: Ort.InferenceSession, readonly path: string, readonly sidecar: OnnxSidecar) {}

  static async create(path: string, o: OnnxSegmenterOptions = {}): Promise<OnnxSegmenter> {
    const op = 'OnnxSegmenter';
    const sidecar = o.sidecar ?? readSidecar(path);
    if (o.threads !== undefined) v.int(op, 'threads', o.threads, 1);
    let ort: typeof Ort;
    try {
      ort = await import('onnxruntime-node');
    } catch (e) {
      return fail(op, `cannot load onnxruntime-node (${(e as Error).message.split('\n')[0]}); install it with ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node`);
    }
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(path, {
        executionProviders: o.executionProviders ?? ['cpu'], graphOptimizationLevel: 'all',
        ...(o.threads !== undefined ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {}),
      });
    } catch (e) {
      return fail(op, `onnxruntime cannot load ${path}: ${(e as Error).message}`);
    }
    return new OnnxSegmenter(ort, session, path, sidecar);
  }

  /** Channels of the logits (1 = binary, thresholded at 0.5 after a sigmoid). */
  get numClasses(): number { return this.sidecar.numClasses; }
  get outputStride(): number { return this.sidecar.outputStride; }
  get minInputSize(): number { return this.sidecar.minInputSize; }
  get preprocessing(): OnnxSidecar['preprocessing'] { return this.sidecar.preprocessing; }

  /** The size an h x w input is padded to: the next valid size, or the export size of a fixed-size model. */
  paddedSize(h: number, w: number): [number, number] {
    const { input } = this.sidecar;
    if (!input.dynamicSize) {
      if (h > input.height! || w > input.width!) {
        fail('OnnxSegmenter', `input ${h}x${w} is larger than the model's fixed size ${input.height}x${input.width}; export with --dynamic-size (or a larger --size)`);
      }
      return [input.height!, input.width!];
    }
    const s = this.outputStride;
    const min = this.minInputSize;
    return [Math.max(min, Math.ceil(h / s) * s), Math.max(min, Math.ceil(w / s) * s)];
  }

  /** Runs the model as it is on a valid-size input; returns every output (`logits`, and `labels`/`attention` when present). */
  async run(x: Float32Array, dims: Dims4): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
    const expect = dims.reduce((a, b) => a * b, 1);
    if (x.length !== expect) fail('OnnxSegmenter', `expected ${expect} values for input [${dims.join(', ')}] but received ${x.length}`);
    if (dims[1] !== this.sidecar.input.channels) fail('OnnxSegmenter', `expected ${this.sidecar.input.channels} input channels, got [${dims.join(', ')}]`);
    const out = await this.session.run({ [this.sidecar.input.name]: new this.ort.Tensor('float32', x, dims) });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { data: t.data as Float32Array, dims: [...t.dims] }]));
  }

  /**
   * Class probabilities [N, classes, H, W] (softmax; sigmoid for one class) for normalized images of any
   * size: padded bottom/right with zeros to a valid size and cropped back, as predictProbs.
   */
  async probs(x: Float32Array, dims: Dims4, o: OnnxInferenceOptions = {}): Promise<Float32Array> {
    const [n, c, h, w] = dims;
    let acc: Float32Array | null = null;
    let count = 0;
    for (const s of o.scales ?? [1]) {
      v.num('OnnxSegmenter', 'scale', s, { min: 0, finite: true });
      const sh = Math.max(1, Math.round(h * s));
      const sw = Math.max(1, Math.round(w * s));
      const xs = s === 1 ? x : resizeBilinear(x, n * c, h, w, sh, sw);
      for (const flipped of o.flip ? [false, true] : [false]) {
        const input = flipped ? flipW(xs, n * c, sh, sw) : xs;
        let p = await this.probsOnce(input, [n, c, sh, sw]);
        if (flipped) p = flipW(p, n * this.numClasses, sh, sw);
        if (s !== 1) p = resizeBilinear(p, n * this.numClasses, sh, sw, h, w);
        if (acc) for (let i = 0; i < acc.length; i++) acc[i] += p[i];
        else acc = p;
        count++;
      }
    }
    if (count > 1) for (let i = 0; i < acc!.length; i++) acc![i] /= count;
    return acc!;
  }

  private async probsOnce(x: Float32Array, [n, c, h, w]: Dims4): Promise<Float32Array> {
    const [ph, pw] = this.paddedSize(h, w);
    const input = ph === h && pw === w ? x : pad(x, n * c, h, w, ph, pw);
    const { logits } = await this.run(input, [n, c, ph, pw]);
    const k = logits.dims[1];
    if (logits.dims[2] !== ph || logits.dims[3] !== pw) fail('OnnxSegmenter', `the model's logits are ${logits.dims.slice(2).join('x')}, not the input size ${ph}x${pw} (head upsampling != 4?)`);
    const cropped = ph === h && pw === w ? logits.data : crop(logits.data, n * k, ph, pw, h, w);
    return this.toProbs(cropped, n, k, h * w);
  }

  /** As predictProbs: softmax (sigmoid for one class) of logits; an output activation baked into the model is not applied twice. */
  private toProbs(x: Float32Array, n: number, k: number, hw: number): Float32Array {
    switch (this.sidecar.activation) {
      case 'sigmoid': case 'softmax': case 'softmax2d': return x;
      case 'logsoftmax': return x.map(Math.exp);
      case 'tanh': return x.map((t) => (t + 1) / 2);
      default: return k === 1 ? sigmoid(x) : softmaxChannels(x, n, k, hw);
    }
  }

  /** Frees the onnxruntime session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

// ---- planar helpers: `planes` images of h x w, row-major ----

function pad(x: Float32Array, planes: number, h: number, w: number, ph: number, pw: number): Float32Array {
  const out = new Float32Array(planes * ph * pw);
  for (let p = 0; p < planes; p++) for (let y = 0; y < h; y++) out.set(x.subarray((p * h + y) * w, (p * h + y + 1) * w), (p * ph + y) * pw);
  return out;
}

function crop(x: Float32Array, planes: number, ph: number, pw: number, h: number, w: number): Float32Array {
  const out = new Float32Array(planes * h * w);
  for (let p = 0; p < planes; p++) for (let y = 0; y < h; y++) out.set(x.subarray((p * ph + y) * pw, (p * ph + y) * pw + w), (p * h + y) * w);
  return out;
}

function flipW(x: Float32Array, planes: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < planes * h; r++) for (let i = 0; i < w; i++) out[r * w + i] = x[r * w + w - 1 - i];
  return out;
}

/** PyTorch's bilinear interpolation with align_corners=False (size given: scale = in / out). */
export function resizeBilinear(x: Float32Array, planes: number, h: number, w: number, oh: number, ow: number): Float32Array {
  const axis = (n: number, on: number) => {
    const i0 = new Int32Array(on);
    const i1 = new Int32Array(on);
    const l = new Float32Array(on);
    const scale = n / on;
    for (let o = 0; o < on; o++) {
      const src = Math.max(0, (o + 0.5) * scale - 0.5);
      i0[o] = Math.min(Math.floor(src), n - 1);
      i1[o] = Math.min(i0[o] + 1, n - 1);
      l[o] = src - i0[o];
    }
    return { i0, i1, l };
  };
  const ys = axis(h, oh);
  const xs = axis(w, ow);
  const out = new Float32Array(planes * oh * ow);
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let oy = 0; oy < oh; oy++) {
      const r0 = base + ys.i0[oy] * w;
      const r1 = base + ys.i1[oy] * w;
      const ly = ys.l[oy];
      for (let ox = 0; ox < ow; ox++) {
        const a = xs.i0[ox];
        const b = xs.i1[ox];
        const lx = xs.l[ox];
        const top = x[r0 + a] * (1 - lx) + x[r0 + b] * lx;
        const bottom = x[r1 + a] * (1 - lx) + x[r1 + b] * lx;
        out[(p * oh + oy) * ow + ox] = top * (1 - ly) + bottom * ly;
      }
    }
  }
  return out;
}

function sigmoid(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]));
  return out;
}

/** Softmax over the channel axis of [n, k, hw]. */
function softmaxChannels(x: Float32Array, n: number, k: number, hw: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) {
    const base = b * k * hw;
    for (let i = 0; i < hw; i++) {
      let m = -Infinity;
      for (let c = 0; c < k; c++) m = Math.max(m, x[base + c * hw + i]);
      let sum = 0;
      for (let c = 0; c < k; c++) { const e = Math.exp(x[base + c * hw + i] - m); out[base + c * hw + i] = e; sum += e; }
      for (let c = 0; c < k; c++) out[base + c * hw + i] /= sum;
    }
  }
  return out;
}

/** Class indices [n, hw] from probabilities [n, k, hw]: argmax (first maximum), or > 0.5 for one class. */
export function labelsFromProbs(p: Float32Array, n: number, k: number, hw: number): Uint8Array {
  const out = new Uint8Array(n * hw);
  for (let b = 0; b < n; b++) {
    const base = b * k * hw;
    for (let i = 0; i < hw; i++) {
      if (k === 1) { out[b * hw + i] = p[base + i] > 0.5 ? 1 : 0; continue; }
      let best = 0;
      let bv = p[base + i];
      for (let c = 1; c < k; c++) { const q = p[base + c * hw + i]; if (q > bv) { bv = q; best = c; } }
      out[b * hw + i] = best;
    }
  }
  return out;
}

// ---- predict / eval on the ONNX engine (mirroring predict.ts and evaluate.ts) ----

/** segmentImage on the ONNX engine: the model's preprocessing, padding to a valid size, cropping back. */
export async function segmentImageOnnx(seg: OnnxSegmenter, img: RgbImage, o: OnnxInferenceOptions & { withProbs?: boolean } = {}): Promise<Segmentation> {
  const t0 = performance.now();
  const pre = seg.preprocessing;
  const t = evalTransform(img, null, evalOptions('predict', { stride: seg.outputStride, mean: pre.mean, std: pre.std }, 255));
  const { info } = t;
  const full = await seg.probs(t.image, [1, 3, info.inputHeight, info.inputWidth], o);
  const k = seg.numClasses;
  const probs = info.inputHeight === info.height && info.inputWidth === info.width ? full : crop(full, k, info.inputHeight, info.inputWidth, info.height, info.width);
  const labels = labelsFromProbs(probs, 1, k, info.height * info.width);
  return { labels, probs: o.withProbs ? probs : undefined, width: info.width, height: info.height, ms: performance.now() - t0 };
}

export interface PredictFilesOnnxOptions extends OnnxInferenceOptions {
  classNames?: readonly string[];
  colors?: readonly RGB[];
  overlay?: boolean;
  probs?: boolean;
  alpha?: number;
  onProgress?: (done: number, total: number, file: string) => void;
}

/** predictFiles on the ONNX engine: the same files (`_mask.png`, `_overlay.png`, `_probs.npy`, stats.json). */
export async function predictFilesOnnx(seg: OnnxSegmenter, inputs: string[], outDir: string, o: PredictFilesOnnxOptions = {}): Promise<PredictedFile[]> {
  const d = defaultLabels(seg.numClasses);
  return writePredictions((img, withProbs) => segmentImageOnnx(seg, img, { ...o, withProbs }), collectInputs(inputs), outDir, {
    ...o, classNames: o.classNames ?? seg.sidecar.classes ?? d.classNames, colors: o.colors ?? seg.sidecar.colors ?? d.colors,
  });
}

/** evaluate() on the ONNX engine, over an eval-mode loader (its padding carries the ignore index). */
export async function evaluateOnnx(seg: OnnxSegmenter, loader: DataLoader, o: OnnxInferenceOptions & { onProgress?: (done: number, total: number) => void } = {}): Promise<EvaluationResult> {
  const ds = loader.dataset;
  const k = seg.numClasses;
  const nc = k === 1 ? 2 : k;
  const cm = new ConfusionMatrix(nc, ds.ignoreIndex);
  const t0 = performance.now();
  let images = 0;
  for await (const batch of loader) {
    const [b, , h, w] = batch.shape;
    const labels = labelsFromProbs(await seg.probs(batch.images, batch.shape, o), b, k, h * w);
    for (let i = 0; i < labels.length; i++) {
      const t = batch.masks[i];
      if (t !== ds.ignoreIndex && t < nc) cm.counts[t * nc + labels[i]]++;
    }
    images += batch.ids.length;
    o.onProgress?.(images, ds.length);
  }
  return { ...cm.metrics(), confusion: cm, images, seconds: (performance.now() - t0) / 1000 };
}
