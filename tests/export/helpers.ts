// Shared by the export and model tests: small models with realistic BatchNorm statistics, and onnxruntime runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { manualSeed, noGrad, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { PAN, type PANOptions, type SegmentationModel } from '../../src/models/index.js';
import { BatchNorm2d } from '../../src/nn/index.js';

/**
 * A seeded PAN whose BatchNorms have random affine parameters and running statistics taken from one
 * training-mode pass (momentum 1), so folding is exercised with non-trivial values and eval-mode
 * activations stay O(1), as in a trained model.
 */
const VAR_FLOOR = 0.05;
const RESIDUAL_SCALE = 0.3;

export function calibratedPan(opts: PANOptions, seed = 0, size?: [number, number], residualScale = RESIDUAL_SCALE): PAN {
  manualSeed(seed);
  return calibrate(new PAN(opts), size, residualScale);
}

/** calibratedPan's BatchNorm statistics for a model of any architecture (seed it before building). */
export function calibrate<M extends SegmentationModel>(model: M, size?: [number, number], residualScale = RESIDUAL_SCALE): M {
  const bns = [...model.namedModules()].filter((e): e is [string, BatchNorm2d] => e[1] instanceof BatchNorm2d);
  const blocks = new Set([...model.namedModules()].filter(([n]) => /^encoder\.layer\d\.\d+$/.test(n)).map(([n, m]) => `${n}.${m._children.has('bn3') ? 'bn3' : 'bn2'}`));
  noGrad(() => {
    for (const [name, m] of bns) {
      // The last BN of each residual branch gets a small scale (zero_init_residual in spirit): random deep
      // ResNets otherwise amplify float32 rounding far beyond what trained ones do.
      if (blocks.has(name)) m.weight!.uniform_(0.5 * residualScale, 1.5 * residualScale);
      else m.weight!.uniform_(0.5, 1.5);
      m.bias!.uniform_(-0.3, 0.3);
      (m as unknown as { momentum: number }).momentum = 1;
    }
    model.train();
    const s = size ?? [model.minInputSize, model.minInputSize];
    tidy(() => { model.forward(randn([2, model.config.inChannels, ...s])); });
    for (const [, m] of bns) {
      (m as unknown as { momentum: number }).momentum = 0.1;
      // One small batch leaves some channels (and the 1x1 pooled branches: 2 values each) with a near-zero
      // variance that a trained model would not have; such channels amplify float32 rounding 100-fold.
      const v = m.runningVar!;
      const sorted = Float32Array.from(v.toArray() as Float32Array).sort();
      v.clamp_(Math.max(VAR_FLOOR, 0.25 * sorted[sorted.length >> 1]));
    }
  });
  return model.eval();
}

export function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'panseg-export-'));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a model file once with onnxruntime-node (CPU, 2 threads); returns every output. */
export async function runOnnx(path: string, input: Float32Array, dims: number[]): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
  const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  try {
    const out = await s.run({ input: new ort.Tensor('float32', input, dims) });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { data: t.data as Float32Array, dims: t.dims }]));
  } finally {
    await s.release();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

export function data(t: Tensor): Float32Array {
  return t.contiguous().toArray() as Float32Array;
}

/** The nodes of an ONNX file (op type, name, inputs, outputs), read with a minimal protobuf walker. */
export function onnxNodes(buf: Uint8Array): { op: string; name: string; inputs: string[]; outputs: string[] }[] {
  const text = new TextDecoder();
  function* fields(b: Uint8Array): Generator<[number, Uint8Array | null]> {
    let p = 0;
    const varint = (): number => {
      let r = 0;
      let k = 1;
      for (;;) {
        const x = b[p++];
        r += (x & 127) * k;
        k *= 128;
        if (x < 128) return r;
      }
    };
    while (p < b.length) {
      const key = varint();
      const wire = key % 8;
      if (wire === 0) { varint(); yield [Math.floor(key / 8), null]; } else if (wire === 2) {
        const n = varint();
        yield [Math.floor(key / 8), b.subarray(p, p + n)];
        p += n;
      } else if (wire === 5) p += 4;
      else if (wire === 1) p += 8;
      else throw new Error(`protobuf wire type ${wire}`);
    }
  }
  let graph: Uint8Array | null = null;
  for (const [f, v] of fields(buf)) if (f === 7) graph = v; // ModelProto.graph
  const out: { op: string; name: string; inputs: string[]; outputs: string[] }[] = [];
  for (const [f, v] of fields(graph!)) {
    if (f !== 1 || !v) continue; // GraphProto.node
    const n = { op: '', name: '', inputs: [] as string[], outputs: [] as string[] };
    for (const [g, x] of fields(v)) {
      if (!x) continue;
      if (g === 1) n.inputs.push(text.decode(x));
      else if (g === 2) n.outputs.push(text.decode(x));
      else if (g === 3) n.name = text.decode(x);
      else if (g === 4) n.op = text.decode(x);
    }
    out.push(n);
  }
  return out;
}
