// Inference on an exported model with onnxruntime-node. It is a LogitsSource: padding, test-time
// augmentation, probabilities and labels are the shared Segmenter's (segmenter.ts), so evaluate,
// predictFiles and segment take it as they take a model. onnxruntime-node is loaded on first use.
import type * as Ort from 'onnxruntime-node';
import { fail } from '../common/errors.js';
import { paddedSize } from '../common/input-size.js';
import * as v from '../common/validate.js';
import { type Tensor, tensor, tidy } from '../engine/index.js';
import { type OnnxSidecar, readSidecar } from '../export/sidecar.js';
import { type LogitsSource, probs } from './segmenter.js';

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
 * A model exported by `exportOnnx`, run by onnxruntime-node.
 * @example
 * const seg = await OnnxSegmenter.create('pan.onnx', { threads: 2 });
 * const probs = await seg.probs(images, [1, 3, 375, 500]); // Float32Array [1, classes, 375, 500]
 * await seg.release();
 */
export class OnnxSegmenter implements LogitsSource {
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
  get activation(): string | null { return this.sidecar.activation; }
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
    return paddedSize(h, w, { stride: this.outputStride, min: this.minInputSize });
  }

  /** Runs the model as it is on a valid-size input; returns every output (`logits`, and `labels`/`attention` when present). */
  async run(x: Float32Array, dims: Dims4): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
    const expect = dims.reduce((a, b) => a * b, 1);
    if (x.length !== expect) fail('OnnxSegmenter', `expected ${expect} values for input [${dims.join(', ')}] but received ${x.length}`);
    if (dims[1] !== this.sidecar.input.channels) fail('OnnxSegmenter', `expected ${this.sidecar.input.channels} input channels, got [${dims.join(', ')}]`);
    const out = await this.session.run({ [this.sidecar.input.name]: new this.ort.Tensor('float32', x, dims) });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { data: t.data as Float32Array, dims: [...t.dims] }]));
  }

  /** The Segmenter's hook: logits [N, K, H, W] for a padded batch. */
  async logits(x: Tensor): Promise<Tensor> {
    const dims = x.shape as Dims4;
    const { logits } = await this.run(tidy(() => x.to('float32').contiguous().toArray() as Float32Array), dims);
    if (logits.dims[2] !== dims[2] || logits.dims[3] !== dims[3]) fail('OnnxSegmenter', `the model's logits are ${logits.dims.slice(2).join('x')}, not the input size ${dims[2]}x${dims[3]} (its head does not upsample to the input)`);
    return tensor(logits.data, logits.dims);
  }

  /**
   * Class probabilities [N, classes, H, W] (softmax; sigmoid for one class) for normalized images of any
   * size: padded bottom/right with zeros to a valid size and cropped back, as predictProbs, with the same
   * test-time augmentation (see segmenter.ts).
   */
  async probs(x: Float32Array, dims: Dims4, o: OnnxInferenceOptions = {}): Promise<Float32Array> {
    const expect = dims.reduce((a, b) => a * b, 1);
    if (x.length !== expect) fail('OnnxSegmenter', `expected ${expect} values for input [${dims.join(', ')}] but received ${x.length}`);
    for (const s of o.scales ?? []) v.num('OnnxSegmenter', 'scale', s, { min: 0, finite: true });
    const t = tensor(x, dims);
    try {
      const p = await probs(this, t, o);
      try { return p.toArray() as Float32Array; } finally { p.dispose(); }
    } finally {
      t.dispose();
    }
  }

  /** Frees the onnxruntime session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
