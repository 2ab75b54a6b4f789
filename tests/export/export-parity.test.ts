// exportOnnx -> onnxruntime-node vs panseg's own forward pass (eval mode, no grad), float32 on CPU.
// Tolerance: max |diff| <= 1e-4 on logits (values up to ~15), aux labels and the FPA attention map.
// The models carry realistic BatchNorm statistics (see calibratedPan), so the folding is exercised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { dispose, liveTensors, noGrad, randn, type Tensor } from '../../src/engine/index.js';
import { exportOnnx, type ExportOnnxOptions } from '../../src/export/index.js';
import type { AttentionTrace, PANOptions, SegmentationOutput } from '../../src/models/index.js';
import { calibratedPan, data, maxAbsDiff, runOnnx, tempDir } from './helpers.js';

const TOL = 1e-4;

interface Case {
  name: string;
  model: PANOptions;
  export: Omit<ExportOnnxOptions, 'path'>;
  /** Input shapes run through the one exported file. */
  inputs: [number, number, number, number][];
}

const CASES: Case[] = [
  { name: 'resnet18 os16, aux head + attention, fixed 128x128, batch 2', model: { encoderName: 'resnet18', classes: 5, auxParams: { classes: 5, dropout: 0.2 } }, export: { height: 128, attention: true }, inputs: [[2, 3, 128, 128]] },
  { name: 'resnet18 depth 4, nearest GAU upsampling, non-square 128x192', model: { encoderName: 'resnet18', classes: 4, encoderDepth: 4, decoderInterpolation: 'nearest' }, export: { height: 128, width: 192 }, inputs: [[1, 3, 128, 192]] },
  { name: 'resnet34 os32, aux max-pool head, fixed 256x256, opset 13', model: { encoderName: 'resnet34', classes: 3, encoderOutputStride: 32, auxParams: { classes: 2, pooling: 'max', activation: 'softmax' } }, export: { height: 256, opset: 13 }, inputs: [[1, 3, 256, 256]] },
  { name: 'resnet50 os16, fixed 128x128', model: { encoderName: 'resnet50', classes: 3 }, export: { height: 128 }, inputs: [[1, 3, 128, 128]] },
  { name: 'resnet18 dynamic size: two sizes and an odd bottleneck from one file', model: { encoderName: 'resnet18', classes: 4 }, export: { dynamicSize: true, attention: true }, inputs: [[1, 3, 128, 128], [2, 3, 160, 224], [1, 3, 144, 208]] },
  { name: 'resnet18 dynamic size, opset 18 (Resize axes), depth 3', model: { encoderName: 'resnet18', classes: 4, encoderDepth: 3 }, export: { dynamicSize: true, opset: 18 }, inputs: [[1, 3, 64, 96]] },
  { name: 'resnet18 one class with sigmoid activation, 4 input channels', model: { encoderName: 'resnet18', classes: 1, activation: 'sigmoid', inChannels: 4 }, export: { height: 128 }, inputs: [[1, 4, 128, 128]] },
  { name: 'resnet18 softmax activation, head upsampling 2, dynamic size', model: { encoderName: 'resnet18', classes: 4, activation: 'softmax', upsampling: 2 }, export: { dynamicSize: true }, inputs: [[1, 3, 128, 160]] },
];

function check(name: string, got: { data: Float32Array; dims: readonly number[] } | undefined, want: Tensor): number {
  assert.ok(got, `${name}: output missing`);
  assert.deepEqual([...got.dims], want.shape, `${name}: shape`);
  const d = maxAbsDiff(got.data, data(want));
  assert.ok(d <= TOL, `${name}: max |diff| ${d} > ${TOL}`);
  return d;
}

for (const c of CASES) {
  test(`ONNX parity: ${c.name}`, async () => {
    using tmp = tempDir();
    const model = calibratedPan(c.model);
    const live = liveTensors();
    const path = join(tmp.dir, 'model.onnx');
    const r = exportOnnx(model, { path, ...c.export });
    assert.equal(liveTensors(), live, 'export leaks no tensors');
    assert.equal(r.sidecar.attention, Boolean(c.export.attention));
    for (const shape of c.inputs) {
      const x = randn(shape);
      const want: SegmentationOutput & { attention?: AttentionTrace } = noGrad(() => (c.export.attention ? model.forwardWithAttention(x) : model.forwardWithAux(x)));
      const got = await runOnnx(path, data(x), shape);
      const diffs = [check('logits', got.logits, want.masks)];
      if (want.labels) diffs.push(check('labels', got.labels, want.labels));
      else assert.equal(got.labels, undefined);
      if (c.export.attention) diffs.push(check('attention', got.attention, want.attention!.fpa!.attention));
      else assert.equal(got.attention, undefined);
      console.log(`  ${shape.join('x')}: max |diff| ${diffs.map((d) => d.toExponential(1)).join(', ')}`);
      dispose([x, want, want.attention?.fpa]); // the FPA trace nests deeper than dispose() looks
    }
    model.dispose();
  });
}

test('ONNX parity: a model from optimizedForInference (BatchNorm already folded) exports the same function', async () => {
  using tmp = tempDir();
  const model = calibratedPan({ encoderName: 'resnet18', classes: 3 });
  const fast = model.optimizedForInference();
  const path = join(tmp.dir, 'fast.onnx');
  exportOnnx(fast, { path, height: 128 });
  const x = randn([1, 3, 128, 128]);
  const want = noGrad(() => model.forward(x));
  const got = await runOnnx(path, data(x), [1, 3, 128, 128]);
  check('logits', got.logits, want);
  dispose([x, want]);
  fast.dispose();
  model.dispose();
});

test('onnxruntime-web (wasm, as the browser page runs it) gives the same logits from a dynamic-size export', async () => {
  const ortWeb = await import('onnxruntime-web');
  ortWeb.env.wasm.numThreads = 1;
  using tmp = tempDir();
  const model = calibratedPan({ encoderName: 'resnet18', classes: 3 });
  const path = join(tmp.dir, 'web.onnx');
  exportOnnx(model, { path, dynamicSize: true, attention: true });
  const session = await ortWeb.InferenceSession.create(path, { executionProviders: ['wasm'] });
  const shape = [1, 3, 128, 160];
  const x = randn(shape);
  const want = noGrad(() => model.forward(x));
  const out = await session.run({ input: new ortWeb.Tensor('float32', data(x), shape) });
  check('logits', { data: out.logits.data as Float32Array, dims: out.logits.dims }, want);
  assert.deepEqual([...out.attention.dims], [1, 1, 8, 10]);
  await session.release();
  dispose([x, want]);
  model.dispose();
});
