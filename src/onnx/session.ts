// An exported model in onnxruntime-node, on plain typed arrays: the session, the input-size rule of its
// sidecar, and float16 inputs/outputs converted at the edge. No libtorch here: `panseg/onnx` and the
// libtorch-side OnnxSegmenter (src/eval/onnx-engine.ts) both run models through this class.
import type * as Ort from 'onnxruntime-node';
import { fail } from '../common/errors.js';
import { paddedSize } from '../common/input-size.js';
import { importOptional } from '../common/optional.js';
import * as v from '../common/validate.js';
import { fromHalf, toHalf } from '../export/fp16.js';
import { type OnnxSidecar, readSidecar } from '../export/sidecar.js';

export interface OnnxSessionOptions {
  /** onnxruntime intra-op threads; default: onnxruntime's choice (one per core). */
  threads?: number;
  /** Execution providers in order of preference; default ['cpu']. ['cuda', 'cpu'] needs the CUDA install (see README). */
  executionProviders?: string[];
  /** The model's sidecar; default: read from `<path>.json`. */
  sidecar?: OnnxSidecar;
}

export type Dims4 = [number, number, number, number];

/** One output of a run, always float32 (a float16 model's outputs are widened). */
export interface OnnxOutput { data: Float32Array; dims: number[] }

/** Loads onnxruntime-node (an optional dependency) for `op`, with an install hint when it is missing. */
export function loadOnnxRuntime(op: string): Promise<typeof Ort> {
  return importOptional<typeof Ort>('onnxruntime-node', op, 'to run ONNX models in Node');
}

/**
 * An exported model's onnxruntime session with its sidecar.
 * @example
 * const s = await OnnxSession.create('pan.onnx', { threads: 2 });
 * const { logits } = await s.run(x, [1, 3, 512, 512]);
 * await s.release();
 */
export class OnnxSession {
  private constructor(private readonly ort: typeof Ort, private readonly session: Ort.InferenceSession, readonly path: string, readonly sidecar: OnnxSidecar) {}

  static async create(path: string, o: OnnxSessionOptions = {}, op = 'OnnxSession'): Promise<OnnxSession> {
    if (typeof path !== 'string' || !path) fail(op, `expected a .onnx file path but received ${String(path)}`);
    const sidecar = o.sidecar ?? readSidecar(path);
    if (o.threads !== undefined) v.int(op, 'threads', o.threads, 1);
    const ort = await loadOnnxRuntime(op);
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(path, {
        executionProviders: o.executionProviders ?? ['cpu'], graphOptimizationLevel: 'all',
        ...(o.threads !== undefined ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {}),
      });
    } catch (e) {
      return fail(op, `onnxruntime cannot load ${path}: ${(e as Error).message.split('\n')[0]}`);
    }
    return new OnnxSession(ort, session, path, sidecar);
  }

  /** The size an h x w input is padded to: the next valid size (common/input-size.ts), or the export size of a fixed-size model. */
  paddedSize(h: number, w: number, op = 'OnnxSession'): [number, number] {
    const { input } = this.sidecar;
    if (!input.dynamicSize) {
      if (h > input.height! || w > input.width!) {
        fail(op, `input ${h}x${w} is larger than the model's fixed size ${input.height}x${input.width}; export with --dynamic-size (or a larger --size)`);
      }
      return [input.height!, input.width!];
    }
    return paddedSize(h, w, { stride: this.sidecar.outputStride, min: this.sidecar.minInputSize });
  }

  /** Runs the model as it is on a valid-size NCHW input; returns every output (`logits`, and `labels`/`attention` when present). */
  async run(x: Float32Array, dims: Dims4, op = 'OnnxSession'): Promise<Record<string, OnnxOutput>> {
    const expect = dims.reduce((a, b) => a * b, 1);
    if (x.length !== expect) fail(op, `expected ${expect} values for input [${dims.join(', ')}] but received ${x.length}`);
    if (dims[1] !== this.sidecar.input.channels) fail(op, `expected ${this.sidecar.input.channels} input channels, got [${dims.join(', ')}]`);
    const input = this.sidecar.input.dtype === 'float16' ? new this.ort.Tensor('float16', toHalf(x), dims) : new this.ort.Tensor('float32', x, dims);
    const out = await this.session.run({ [this.sidecar.input.name]: input });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, {
      data: t.type === 'float16' ? fromHalf(new Uint16Array((t.data as Uint16Array).buffer, (t.data as Uint16Array).byteOffset, t.size)) : (t.data as Float32Array),
      dims: [...t.dims],
    }]));
  }

  /** Frees the onnxruntime session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
