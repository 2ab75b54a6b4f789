// fp16 ONNX export: float16 weights (half the file), float32 inputs and outputs, loads and runs in
// onnxruntime-node, labels agree with the fp32 export on >= 99% of pixels; the half-float conversion; and
// the claim behind ORT_CPU_FLOAT16_OPS: onnxruntime's CPU provider inserts no Casts into the default fp16 graph.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { exportOnnx, readSidecar } from '../../src/export/index.js';
import { fromHalfBits, toHalfBits } from '../../src/export/fp16.js';
import { createModel, type SegmentationModel } from '../../src/models/index.js';
import { OnnxSession } from '../../src/onnx/session.js';
import { labelsOf } from '../../src/onnx/labels.js';
import { calibrate, calibratedPan, onnxNodes, tempDir } from './helpers.js';
import { manualSeed } from '../../src/engine/index.js';

const tmp = tempDir();
const [H, W] = [96, 160];
let pan: SegmentationModel;
const input = Float32Array.from({ length: 3 * H * W }, (_, i) => 1.5 * Math.sin(i * 0.0021) + 0.5 * Math.cos(i * 0.37));

before(() => { pan = calibratedPan({ encoderName: 'resnet18', classes: 4, decoderChannels: 16 }); });
after(() => {
  pan?.dispose();
  tmp[Symbol.dispose]();
});

async function labels(path: string): Promise<{ labels: Uint8Array; type: string }> {
  const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 2 });
  try {
    const { logits } = await s.run({ input: new ort.Tensor('float32', input, [1, 3, H, W]) });
    return { labels: labelsOf({ data: logits.data as Float32Array, channels: logits.dims[1], rows: H, cols: W }, H, W, null), type: logits.type };
  } finally {
    await s.release();
  }
}

function agreement(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  return same / a.length;
}

test('half floats: round to nearest even, subnormals, overflow to infinity, NaN', () => {
  const cases: [number, number][] = [[0, 0], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [2 ** -24, 1], [2 ** -25, 0], [3 * 2 ** -26, 1], [0.1, 0x2e66], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [-0, 0x8000]];
  for (const [x, bits] of cases) assert.equal(toHalfBits(x), bits, `${x}`);
  assert.equal(toHalfBits(Infinity), 0x7c00);
  assert.ok(Number.isNaN(fromHalfBits(toHalfBits(NaN))));
  for (const bits of [0x3c00, 0x7bff, 0x0001, 0x03ff, 0x2e66, 0xc000]) assert.equal(toHalfBits(fromHalfBits(bits)), bits);
});

test('fp16 export: half the file, float32 input and logits, >= 99% of labels as fp32, sidecar with dtype and sha256', { timeout: 120_000 }, async (t) => {
  const p32 = join(tmp.dir, 'pan32.onnx');
  const p16 = join(tmp.dir, 'pan16.onnx');
  exportOnnx(pan, { path: p32, dynamicSize: true });
  const r = exportOnnx(pan, { path: p16, dynamicSize: true, dtype: 'fp16' });
  const ratio = statSync(p16).size / statSync(p32).size;
  assert.ok(ratio > 0.45 && ratio < 0.55, `fp16 file is ${ratio.toFixed(3)} of fp32`);
  const sc = readSidecar(p16);
  assert.equal(sc.dtype, 'fp16');
  assert.equal(sc.float16Ops, 'cpu');
  assert.equal(sc.input.dtype, 'float32');
  assert.equal(sc.sha256, createHash('sha256').update(readFileSync(p16)).digest('hex'));
  assert.equal(sc.bytes, statSync(p16).size);
  assert.equal(r.sidecar.sha256, sc.sha256);
  assert.equal(readSidecar(p32).dtype, 'fp32');
  const [a, b] = [await labels(p32), await labels(p16)];
  assert.equal(b.type, 'float32');
  const agree = agreement(a.labels, b.labels);
  t.diagnostic(`fp16/fp32 file ${ratio.toFixed(3)}, labels agree on ${(100 * agree).toFixed(3)}% of pixels`);
  assert.ok(agree >= 0.99, `${(100 * agree).toFixed(2)}%`);
});

test("onnxruntime's CPU provider runs the default fp16 graph as it is: no Casts inserted (ORT_CPU_FLOAT16_OPS)", { timeout: 120_000 }, async () => {
  const path = join(tmp.dir, 'pan16.onnx');
  const optimized = join(tmp.dir, 'pan16.opt.onnx');
  const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: 'basic', optimizedModelFilePath: optimized } as ort.InferenceSession.SessionOptions);
  await s.release();
  const inserted = onnxNodes(readFileSync(optimized)).filter((n) => n.op === 'Cast' && /^Inserted/.test(n.name));
  assert.deepEqual(inserted.map((n) => n.name), []);
  // Every op in float16 ('all', for WebGPU): onnxruntime's CPU provider casts around its Convs, which it has no float16 kernel for.
  const all = join(tmp.dir, 'pan16all.onnx');
  exportOnnx(pan, { path: all, dynamicSize: true, dtype: 'fp16', float16Ops: 'all' });
  const s2 = await ort.InferenceSession.create(all, { graphOptimizationLevel: 'basic', optimizedModelFilePath: `${all}.opt` } as ort.InferenceSession.SessionOptions);
  await s2.release();
  const nodes = onnxNodes(readFileSync(`${all}.opt`));
  const castOut = new Set(nodes.filter((n) => n.op === 'Cast' && /^Inserted/.test(n.name)).flatMap((n) => n.outputs));
  assert.ok(nodes.some((n) => n.op === 'Conv' && n.inputs.some((i) => castOut.has(i))), 'expected onnxruntime to cast Conv inputs to float32');
  const agree = agreement((await labels(join(tmp.dir, 'pan32.onnx'))).labels, (await labels(all)).labels);
  assert.ok(agree >= 0.99, `'all': ${(100 * agree).toFixed(2)}%`);
});

test('float16 inputs and outputs on request, fed and read by OnnxSession as float32', { timeout: 120_000 }, async () => {
  const path = join(tmp.dir, 'pan16io.onnx');
  exportOnnx(pan, { path, dynamicSize: true, dtype: 'fp16', ioDtype: 'float16', attention: true });
  assert.equal(readSidecar(path).input.dtype, 'float16');
  const s = await OnnxSession.create(path, { threads: 2 });
  try {
    const out = await s.run(input, [1, 3, H, W]);
    assert.ok(out.logits.data instanceof Float32Array);
    assert.deepEqual(out.logits.dims, [1, 4, H, W]);
    assert.ok(out.attention.data instanceof Float32Array);
    const l = labelsOf({ data: out.logits.data, channels: 4, rows: H, cols: W }, H, W, null);
    assert.ok(agreement(l, (await labels(join(tmp.dir, 'pan32.onnx'))).labels) >= 0.99);
  } finally {
    await s.release();
  }
  assert.throws(() => exportOnnx(pan, { path, ioDtype: 'float16' }), /exportOnnx: ioDtype and float16Ops apply to dtype 'fp16'; add dtype: 'fp16'/);
  assert.throws(() => exportOnnx(pan, { path, dtype: 'bf16' as 'fp16' }), /exportOnnx: .*dtype/);
});

test('fp16 PSPNet (pooling windows computed from the shape stay float32) and fixed-size UNet', { timeout: 180_000 }, async () => {
  for (const [arch, o, dynamicSize] of [['pspnet', { encoderName: 'resnet18', classes: 3 }, true], ['unet', { encoderName: 'resnet18', classes: 3, decoderChannels: [16, 16, 16, 16, 16] }, false]] as const) {
    manualSeed(1);
    const m = calibrate(createModel(arch, o as never));
    try {
      const [p32, p16] = [join(tmp.dir, `${arch}32.onnx`), join(tmp.dir, `${arch}16.onnx`)];
      const size = dynamicSize ? {} : { height: H, width: W };
      exportOnnx(m, { path: p32, dynamicSize, ...size });
      exportOnnx(m, { path: p16, dynamicSize, ...size, dtype: 'fp16' });
      const agree = agreement((await labels(p32)).labels, (await labels(p16)).labels);
      assert.ok(agree >= 0.99, `${arch}: ${(100 * agree).toFixed(2)}%`);
    } finally {
      m.dispose();
    }
  }
});
