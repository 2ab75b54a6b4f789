// The JSON written beside an exported .onnx: what a runtime needs to feed the model and read its
// outputs (preprocessing, valid sizes, outputs) and to show them (class names, colours).
import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../common/errors.js';
import type { RGB } from '../common/palette.js';

export interface OnnxSidecar {
  format: 'panseg-onnx';
  formatVersion: 1;
  pansegVersion: string;
  /** File name of the model beside this file. */
  model: string;
  opset: number;
  /** Weights and compute: 'fp16' stores float16 weights and computes in float16 where the runtime can (absent = 'fp32'). */
  dtype?: 'fp32' | 'fp16';
  /** With dtype 'fp16': 'cpu' = float16 only where onnxruntime's CPU/wasm kernels exist, 'all' = every float op. */
  float16Ops?: 'cpu' | 'all';
  /** sha256 (hex) and size of the .onnx file, for caches (the page's Cache API store); absent in older sidecars. */
  sha256?: string;
  bytes?: number;
  input: {
    name: string;
    layout: 'NCHW';
    /** The input's type (and the float outputs'): float32 unless exported with ioDtype 'float16'. */
    dtype: 'float32' | 'float16';
    channels: number;
    /** Fixed export size, or null with dynamicSize. */
    height: number | null;
    width: number | null;
    dynamicSize: boolean;
    dynamicBatch: true;
  };
  /** Output names; null when absent. `labels` exists with an aux head, `attention` when exported with it. */
  outputs: { logits: string; labels: string | null; attention: string | null };
  /** Whether the model has the `attention` output (FPA's map [N, 1, H/os, W/os]). */
  attention: boolean;
  /** Channels of `logits` (1 = binary: sigmoid > 0.5). */
  numClasses: number;
  classes: string[];
  colors: RGB[];
  /** The head activation already applied to `logits` (null = raw logits). */
  activation: string | null;
  /** Scale pixels from [0, 255] to inputRange, then (x - mean) / std per RGB channel. */
  preprocessing: { mean: [number, number, number]; std: [number, number, number]; inputRange: [number, number]; inputSpace: 'RGB' | 'BGR' };
  /** H and W must be multiples of this (pad bottom/right with zeros after normalization): the model's inputSizeRule. */
  outputStride: number;
  /** H and W must be at least this. */
  minInputSize: number;
  ignoreIndex?: number;
  /** smp's config.json of the model (`_model_class` names the architecture). */
  architecture: Record<string, unknown>;
}

/** `model.onnx` -> `model.onnx.json`. */
export function sidecarPathFor(onnxPath: string): string {
  return `${onnxPath}.json`;
}

/** Reads and checks the sidecar of an exported model. */
export function readSidecar(onnxPath: string): OnnxSidecar {
  const op = 'readSidecar';
  const p = sidecarPathFor(onnxPath);
  if (!existsSync(p)) fail(op, `${p} not found: a panseg ONNX model comes with a sidecar JSON (written by 'panseg export')`);
  let s: OnnxSidecar;
  try { s = JSON.parse(readFileSync(p, 'utf8')) as OnnxSidecar; } catch (e) { return fail(op, `${p} is not valid JSON: ${(e as Error).message}`); }
  if (s?.format !== 'panseg-onnx') fail(op, `${p} is not a panseg ONNX sidecar (format is ${JSON.stringify(s?.format)})`);
  if (s.formatVersion !== 1) fail(op, `${p} has formatVersion ${s.formatVersion}; this panseg reads version 1`);
  return s;
}
