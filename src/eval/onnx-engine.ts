// Inference on an exported model with onnxruntime-node. It is a LogitsSource: padding, test-time
// augmentation, probabilities and labels are the shared Segmenter's (segmenter.ts), so evaluate,
// predictFiles and segment take it as they take a model. The session itself (loading onnxruntime-node,
// an optional dependency, on first use; the input-size rule; float16 inputs) is src/onnx's OnnxSession,
// which `panseg/onnx` uses without libtorch.
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { type Tensor, tensor, tidy } from '../engine/index.js';
import type { OnnxSidecar } from '../export/sidecar.js';
import { type Dims4, type OnnxOutput, OnnxSession, type OnnxSessionOptions } from '../onnx/session.js';
import { type LogitsSource, probs } from './segmenter.js';

export type OnnxSegmenterOptions = OnnxSessionOptions;

/** Test-time augmentation, as InferenceOptions on the torch path. */
export interface OnnxInferenceOptions {
  /** Average with the horizontally flipped input. Default false. */
  flip?: boolean;
  /** Input scales to average (bilinear, align_corners=False, as the torch path); default [1]. */
  scales?: number[];
}

/**
 * A model exported by `exportOnnx`, run by onnxruntime-node.
 * @example
 * const seg = await OnnxSegmenter.create('pan.onnx', { threads: 2 });
 * const probs = await seg.probs(images, [1, 3, 375, 500]); // Float32Array [1, classes, 375, 500]
 * await seg.release();
 */
export class OnnxSegmenter implements LogitsSource {
  private constructor(private readonly session: OnnxSession) {}

  static async create(path: string, o: OnnxSegmenterOptions = {}): Promise<OnnxSegmenter> {
    return new OnnxSegmenter(await OnnxSession.create(path, o, 'OnnxSegmenter'));
  }

  get path(): string { return this.session.path; }
  get sidecar(): OnnxSidecar { return this.session.sidecar; }
  /** Channels of the logits (1 = binary, thresholded at 0.5 after a sigmoid). */
  get numClasses(): number { return this.sidecar.numClasses; }
  get activation(): string | null { return this.sidecar.activation; }
  get outputStride(): number { return this.sidecar.outputStride; }
  get minInputSize(): number { return this.sidecar.minInputSize; }
  get preprocessing(): OnnxSidecar['preprocessing'] { return this.sidecar.preprocessing; }

  /** The size an h x w input is padded to: the next valid size, or the export size of a fixed-size model. */
  paddedSize(h: number, w: number): [number, number] {
    return this.session.paddedSize(h, w, 'OnnxSegmenter');
  }

  /** Runs the model as it is on a valid-size input; returns every output (`logits`, and `labels`/`attention` when present). */
  run(x: Float32Array, dims: Dims4): Promise<Record<string, OnnxOutput>> {
    return this.session.run(x, dims, 'OnnxSegmenter');
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
