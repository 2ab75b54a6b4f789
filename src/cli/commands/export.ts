import { statSync } from 'node:fs';
import type { Flag } from '../args.js';
import { type CommandSpec, required, UsageError } from '../args.js';
import { cachedOnnx, exportOnnx, MAX_OPSET, MIN_OPSET } from '../../export/index.js';
import { OnnxSegmenter } from '../../eval/onnx-engine.js';
import { loadModelWithMeta } from '../../models/index.js';

export const spec: CommandSpec = {
  name: 'export',
  summary: 'export a model to ONNX (BatchNorm folded) with a sidecar JSON of classes, colours and preprocessing',
  usage: 'panseg export --model DIR --out model.onnx [--opset 17] [--dynamic-size | --size 512] [--attention] [--dtype fp16]',
  flags: [
    { name: 'model', type: 'string', desc: 'model directory (save_pretrained / savePretrained format)' },
    { name: 'out', type: 'string', desc: 'output .onnx file; the sidecar goes to <out>.json' },
    { name: 'opset', type: 'int', desc: `ONNX opset (${MIN_OPSET}..${MAX_OPSET})`, default: 17 },
    { name: 'dynamic-size', type: 'boolean', desc: 'symbolic height and width: any valid size at run time' },
    { name: 'size', type: 'string', desc: 'fixed input size, N or HxW, multiples of the output stride (default: 512)' },
    { name: 'attention', type: 'boolean', desc: "add an 'attention' output: the FPA spatial attention map" },
    { name: 'dtype', type: 'string', desc: "weights (and compute where onnxruntime's CPU/wasm kernels exist) in fp16: half the file; input and outputs stay float32", choices: ['fp32', 'fp16'], default: 'fp32' },
    { name: 'fp16-ops', type: 'string', desc: "with --dtype fp16: ops computed in float16, 'cpu' (where onnxruntime's CPU/wasm has kernels) or 'all' (WebGPU)", choices: ['cpu', 'all'] },
    { name: 'fp16-io', type: 'boolean', desc: 'with --dtype fp16: float16 input and outputs too (the web page needs float32)' },
    { name: 'json', type: 'boolean', desc: 'print the result as JSON' },
  ],
  examples: [
    'panseg export --model runs/voc/checkpoints/best --out pan.onnx',
    'panseg export --model runs/voc/checkpoints/best --out pan-any.onnx --dynamic-size --attention',
    'panseg export --model runs/voc/checkpoints/best --out pan-fp16.onnx --dynamic-size --dtype fp16',
  ],
};

function parseSize(s: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(s.trim());
  if (!m) throw new UsageError(`--size expects N or HxW (e.g. 512 or 384x512), got '${s}'`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

export async function run(o: Record<string, unknown>): Promise<void> {
  const dir = required<string>(o, 'model', 'model', 'export');
  const out = required<string>(o, 'out', 'out', 'export');
  const dynamicSize = Boolean(o.dynamicSize);
  if (dynamicSize && o.size !== undefined) throw new UsageError('--size fixes the input size; leave it out with --dynamic-size');
  const [height, width] = dynamicSize ? [undefined, undefined] : parseSize(String(o.size ?? '512'));
  const dtype = (o.dtype as 'fp32' | 'fp16' | undefined) ?? 'fp32';
  if (dtype !== 'fp16' && (o.fp16Ops !== undefined || o.fp16Io)) throw new UsageError('--fp16-ops and --fp16-io go with --dtype fp16');
  const fp16 = dtype === 'fp16' ? { float16Ops: o.fp16Ops as 'cpu' | 'all' | undefined, ioDtype: o.fp16Io ? 'float16' as const : undefined } : {};
  const t0 = performance.now();
  const { model, meta } = loadModelWithMeta(dir);
  try {
    const r = exportOnnx(model, { path: out, opset: o.opset as number, dynamicSize, height, width, attention: Boolean(o.attention), meta, dtype, ...fp16 });
    const mb = statSync(r.path).size / 2 ** 20;
    if (o.json) {
      console.log(JSON.stringify({ path: r.path, sidecar: r.sidecarPath, nodes: r.nodes, bytes: r.bytes, opset: r.sidecar.opset, dtype: r.sidecar.dtype, sha256: r.sidecar.sha256, input: r.sidecar.input, outputs: r.sidecar.outputs }));
      return;
    }
    const size = dynamicSize ? `dynamic HxW (multiples of ${model.inputSizeRule.stride}, >= ${model.inputSizeRule.min})` : `${height}x${width}`;
    const outs = Object.values(r.sidecar.outputs).filter(Boolean).join(', ');
    console.log(`${r.path}: ${mb.toFixed(1)} MiB (${dtype}), ${r.nodes} nodes, opset ${r.sidecar.opset}, input [batch, ${model.config.inChannels}, ${size}], outputs ${outs} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    console.log(`${r.sidecarPath}: classes, colours, preprocessing, output stride`);
  } finally {
    model.dispose();
  }
}

// ---- the ONNX engine for predict and eval ----

export const ENGINE_FLAGS: Flag[] = [
  { name: 'engine', type: 'string', desc: 'inference engine: libtorch, or onnxruntime-node (CPU) on an ONNX export', choices: ['torch', 'onnx'], default: 'torch' },
  { name: 'onnx', type: 'string', desc: 'an exported .onnx to run (sidecar beside it; implies --engine onnx); default: --model exported once to a cache' },
];

/** The OnnxSegmenter that --engine onnx asks for: --onnx FILE, or --model DIR exported to the cache. */
export async function onnxSegmenterFor(o: Record<string, unknown>, cmd: string): Promise<OnnxSegmenter> {
  if (o.precision !== undefined && o.precision !== 'auto' && o.precision !== 'fp32') throw new UsageError(`--engine onnx runs in fp32; --precision ${String(o.precision)} needs --engine torch`);
  if (o.device !== undefined && o.device !== 'cpu') throw new UsageError(`--engine onnx runs on the CPU; --device ${String(o.device)} needs --engine torch`);
  const path = (o.onnx as string | undefined) ?? cachedOnnx(required<string>(o, 'model', 'model', cmd));
  return OnnxSegmenter.create(path, { threads: o.threads as number | undefined });
}
