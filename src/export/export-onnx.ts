// exportOnnx: any registered architecture -> a standard ONNX file (BatchNorm folded) plus its sidecar JSON.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fail } from '../common/errors.js';
import { type RGB, VOC_PALETTE } from '../common/palette.js';
import * as v from '../common/validate.js';
import { packageRoot } from '../common/package-root.js';
import { validSide } from '../common/input-size.js';
import type { PansegMeta, SegmentationModel } from '../models/base/index.js';
import { emitModel } from './emit-model.js';
import { ALL_FLOAT16_OPS, ORT_CPU_FLOAT16_OPS } from './fp16.js';
import { writeMessage } from './graph.js';
import { type OnnxSidecar, sidecarPathFor } from './sidecar.js';

export const MIN_OPSET = 13;
export const MAX_OPSET = 21;

export interface ExportOnnxOptions {
  /** Where to write the model; the sidecar goes to `<path>.json`. */
  path: string;
  /** ONNX opset, 13..21. Default 17. */
  opset?: number;
  /** Symbolic H and W (any valid size at run time); Resize targets are then computed in the graph. Default false. */
  dynamicSize?: boolean;
  /** Fixed input height (default 512, or `width` if only that is given); a multiple of the output stride, >= minInputSize. */
  height?: number;
  /** Fixed input width (default: the height). */
  width?: number;
  /** PAN only: add an `attention` output, FPA's 1-channel spatial attention map at the bottleneck size. Default false. */
  attention?: boolean;
  /** Class names, colours, ignore index for the sidecar (as in panseg.json). */
  meta?: PansegMeta;
  /**
   * 'fp16': float16 weights (half the file) and float16 compute where onnxruntime's CPU provider has the
   * kernels, float32 elsewhere (see fp16.ts). Default 'fp32'.
   */
  dtype?: 'fp32' | 'fp16';
  /** With dtype 'fp16': the input and float outputs' type. Default 'float32' (Casts at the boundary). */
  ioDtype?: 'float32' | 'float16';
  /**
   * With dtype 'fp16', which ops compute in float16: 'cpu' (default) those onnxruntime's CPU provider and
   * wasm have float16 kernels for (data movement only, so compute stays float32), 'all' every float op (WebGPU).
   */
  float16Ops?: 'cpu' | 'all';
}

export interface ExportOnnxResult {
  path: string;
  sidecarPath: string;
  sidecar: OnnxSidecar;
  /** Nodes in the graph. */
  nodes: number;
  bytes: number;
}

export function pansegVersion(): string {
  try { return (JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string }).version; } catch { return 'unknown'; }
}

/** Checks an export size against the model, naming the nearest valid one. */
function checkSize(model: SegmentationModel, name: string, n: number): number {
  v.int('exportOnnx', name, n, 1);
  const r = model.inputSizeRule;
  if (validSide(n, r) !== n) fail('exportOnnx', `${name} ${n} is not a valid input size: it must be a multiple of the output stride ${r.stride} and at least ${r.min}; use ${validSide(n, r)}`);
  return n;
}

/**
 * Exports a model of any registered architecture to ONNX (input `input` [batch, C, H, W] float32, output `logits`,
 * plus `labels` with an aux head and, for PAN, `attention` on request), with BatchNorm folded into the
 * convolutions, and writes `<path>.json` beside it.
 * The batch is always dynamic; H and W are fixed (default 512x512) unless `dynamicSize`.
 * @example
 * const { model, meta } = loadModelWithMeta('runs/voc/best');
 * exportOnnx(model, { path: 'pan.onnx', meta });             // fixed 512x512
 * exportOnnx(model, { path: 'pan-any.onnx', dynamicSize: true, attention: true });
 */
export function exportOnnx(model: SegmentationModel, options: ExportOnnxOptions): ExportOnnxResult {
  const op = 'exportOnnx';
  if (!options || typeof options.path !== 'string' || !options.path) fail(op, `expected a file path for path but received ${String(options?.path)}`);
  const opset = v.int(op, 'opset', options.opset ?? 17, MIN_OPSET, MAX_OPSET);
  const dynamicSize = v.bool(op, 'dynamicSize', options.dynamicSize ?? false);
  const attention = v.bool(op, 'attention', options.attention ?? false);
  const dtype = v.oneOf(op, 'dtype', options.dtype ?? 'fp32', ['fp32', 'fp16'] as const);
  const ioDtype = v.oneOf(op, 'ioDtype', options.ioDtype ?? 'float32', ['float32', 'float16'] as const);
  const float16Ops = v.oneOf(op, 'float16Ops', options.float16Ops ?? 'cpu', ['cpu', 'all'] as const);
  if (dtype !== 'fp16' && (options.ioDtype !== undefined || options.float16Ops !== undefined)) fail(op, "ioDtype and float16Ops apply to dtype 'fp16'; add dtype: 'fp16'");
  let size: [number, number] | null = null;
  if (!dynamicSize) {
    const h = options.height ?? options.width ?? 512;
    size = [checkSize(model, 'height', h), checkSize(model, 'width', options.width ?? h)];
  } else if (options.height !== undefined || options.width !== undefined) {
    fail(op, 'height/width fix the input size; leave them out with dynamicSize');
  }

  const { graph, outputs } = emitModel(model, { opset, size, attention });
  const c = model.config;
  const meta = options.meta ?? {};
  const n = Math.max(2, c.classes);
  const pre = model.preprocessing;
  const sidecar: OnnxSidecar = {
    format: 'panseg-onnx', formatVersion: 1, pansegVersion: pansegVersion(), model: basename(options.path), opset,
    dtype, ...(dtype === 'fp16' ? { float16Ops } : {}),
    input: { name: 'input', layout: 'NCHW', dtype: ioDtype, channels: c.inChannels, height: size?.[0] ?? null, width: size?.[1] ?? null, dynamicSize, dynamicBatch: true },
    outputs, attention,
    numClasses: c.classes,
    classes: meta.classNames ?? Array.from({ length: n }, (_, i) => `class ${i}`),
    colors: (meta.colors as RGB[] | undefined) ?? VOC_PALETTE.slice(0, Math.max(n, meta.classNames?.length ?? 0)).map((x) => [...x] as RGB),
    activation: c.activation,
    preprocessing: { mean: pre.mean, std: pre.std, inputRange: pre.inputRange, inputSpace: pre.inputSpace },
    outputStride: model.inputSizeRule.stride, minInputSize: model.inputSizeRule.min,
    ...(meta.ignoreIndex !== undefined ? { ignoreIndex: meta.ignoreIndex } : {}),
    architecture: model.smpConfig(),
  };
  const proto = graph.build({
    opset, producerVersion: sidecar.pansegVersion, doc: `${model.architecture} (${c.encoderName}, output stride ${model.outputStride}) exported by panseg`,
    metadata: { panseg: JSON.stringify(sidecar) },
    ...(dtype === 'fp16' ? { float16: { float32Io: ioDtype === 'float32', float16Ops: float16Ops === 'all' ? ALL_FLOAT16_OPS : ORT_CPU_FLOAT16_OPS } } : {}),
  });

  // Written beside the target and renamed, so a crash never leaves a truncated model.
  mkdirSync(dirname(options.path) || '.', { recursive: true });
  const sidecarPath = sidecarPathFor(options.path);
  const tmp = `${options.path}.tmp-${process.pid}`;
  try {
    // The file's hash and size go in the sidecar file only (the copy in the model's metadata cannot hold its own hash).
    sidecar.sha256 = writeMessage(tmp, proto);
    sidecar.bytes = proto.length;
    renameSync(tmp, options.path);
  } catch (e) {
    rmSync(tmp, { force: true });
    fail(op, `cannot write ${options.path}: ${(e as Error).message}`);
  }
  writeFileSync(`${sidecarPath}.tmp-${process.pid}`, `${JSON.stringify(sidecar, null, 2)}\n`);
  renameSync(`${sidecarPath}.tmp-${process.pid}`, sidecarPath);
  return { path: options.path, sidecarPath, sidecar, nodes: graph.nodeCount, bytes: proto.length };
}
