// OnnxSegmenter vs the torch path (predictProbs / segmentImage / evaluate at fp32): one Segmenter does the
// padding, test-time augmentation and labels for both engines, so this checks the engines' logits agree. Probabilities agree to <= 1e-4 max abs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DataLoader, generateSynthetic, openDataset, type RgbImage } from '../../src/data/index.js';
import { dispose, randn, tensor } from '../../src/engine/index.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { predictProbs, probsToLabels } from '../../src/eval/inference.js';
import { OnnxSegmenter } from '../../src/eval/onnx-engine.js';
import { segment, segmentImage } from '../../src/eval/predict.js';
import { exportOnnx } from '../../src/export/index.js';
import type { PAN } from '../../src/models/index.js';
import { calibratedPan, data, maxAbsDiff, tempDir } from './helpers.js';

const TOL = 1e-4;
const tmp = tempDir();
let model: PAN;
let seg: OnnxSegmenter;

before(async () => {
  model = calibratedPan({ encoderName: 'resnet18', classes: 4 });
  const path = join(tmp.dir, 'dyn.onnx');
  exportOnnx(model, { path, dynamicSize: true });
  seg = await OnnxSegmenter.create(path, { threads: 2 });
});
after(async () => {
  await seg.release();
  model.dispose();
  tmp[Symbol.dispose]();
});

function agreement(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  return same / a.length;
}

async function compare(shape: [number, number, number, number], o: { flip?: boolean; scales?: number[] } = {}): Promise<number> {
  const x = randn(shape);
  const want = predictProbs(model, x, { ...o, precision: 'fp32' });
  const got = await seg.probs(data(x), shape, o);
  const d = maxAbsDiff(got, data(want));
  const [n, , h, w] = shape;
  const k = want.shape[1];
  const labels = (p: Float32Array) => data(probsToLabels(tensor(p, [n, k, h, w])).to('uint8')) as unknown as Uint8Array;
  const agree = agreement(labels(got), labels(data(want)));
  dispose([x, want]);
  assert.ok(d <= TOL, `probs differ by ${d}`);
  assert.ok(agree >= 0.999, `labels agree on ${agree}`);
  return d;
}

test('probs: an input that needs padding (100x150 -> 128x160) and a batch of 2', async () => {
  await compare([1, 3, 100, 150]);
  await compare([2, 3, 130, 140]);
});

test('probs: test-time augmentation (flip, scales 0.75 and 1.25) as predictProbs', async () => {
  await compare([1, 3, 96, 128], { flip: true, scales: [0.75, 1, 1.25] });
});

test('probs: models with an output activation (softmax, logsoftmax, tanh) are not activated twice', async () => {
  for (const activation of ['softmax', 'logsoftmax', 'tanh'] as const) {
    const m = calibratedPan({ encoderName: 'resnet18', classes: 3, activation }, 7);
    const path = join(tmp.dir, `${activation}.onnx`);
    exportOnnx(m, { path, dynamicSize: true });
    const s = await OnnxSegmenter.create(path, { threads: 2 });
    const x = randn([1, 3, 128, 128]);
    const want = predictProbs(m, x, { precision: 'fp32' });
    const d = maxAbsDiff(await s.probs(data(x), [1, 3, 128, 128]), data(want));
    assert.ok(d <= TOL, `${activation}: probs differ by ${d}`);
    dispose([x, want]);
    await s.release();
    m.dispose();
  }
});

test('segment on the ONNX engine gives the labels of segmentImage (preprocessing, padding, crop)', async () => {
  const w = 150;
  const h = 110;
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let i = 0; i < w; i++) {
    const o = (y * w + i) * 3;
    px[o] = (i * 255) / w; px[o + 1] = (y * 255) / h; px[o + 2] = ((i ^ y) & 64) ? 200 : 30;
  }
  const img: RgbImage = { data: px, width: w, height: h } as RgbImage;
  const want = segmentImage(model, img, { precision: 'fp32', withProbs: true });
  const got = await segment(seg, img, { withProbs: true });
  assert.deepEqual([got.width, got.height], [w, h]);
  assert.ok(agreement(got.labels, want.labels) >= 0.999);
  assert.ok(maxAbsDiff(got.probs!, want.probs!) <= TOL);
});

test('evaluate on the ONNX engine matches the model on a small dataset', async () => {
  const dir = join(tmp.dir, 'synth');
  await generateSynthetic(dir, { train: 1, val: 3, size: 100, seed: 3 });
  const ds = openDataset('folder', dir, { split: 'val' });
  const m4 = calibratedPan({ encoderName: 'resnet18', classes: ds.numClasses }, 1);
  const path = join(tmp.dir, 'm4.onnx');
  exportOnnx(m4, { path, dynamicSize: true });
  const s4 = await OnnxSegmenter.create(path, { threads: 2 });
  const pre = m4.preprocessing;
  const loader = () => new DataLoader(ds, { mode: 'eval', batchSize: 1, stride: m4.outputStride, mean: pre.mean, std: pre.std, workers: 0 });
  const l1 = loader();
  const l2 = loader();
  try {
    const want = await evaluate(m4, l1, { precision: 'fp32' });
    const got = await evaluate(s4, l2);
    assert.equal(got.images, 3);
    const total = want.confusion.counts.reduce((a, b) => a + b, 0);
    assert.equal(got.confusion.counts.reduce((a, b) => a + b, 0), total);
    let moved = 0;
    for (let i = 0; i < got.confusion.counts.length; i++) moved += Math.abs(got.confusion.counts[i] - want.confusion.counts[i]);
    assert.ok(moved / total <= 0.002, `confusion matrices differ on ${moved} of ${total} pixels`);
    assert.ok(Math.abs(got.miou - want.miou) <= 1e-3);
  } finally {
    await l1.close();
    await l2.close();
    await s4.release();
    m4.dispose();
  }
});

test('a fixed-size model pads smaller inputs to its size and rejects larger ones', async () => {
  const path = join(tmp.dir, 'fixed.onnx');
  const one = calibratedPan({ encoderName: 'resnet18', classes: 1 }, 2);
  exportOnnx(one, { path, height: 128, width: 160 });
  const s = await OnnxSegmenter.create(path);
  try {
    assert.deepEqual(s.paddedSize(100, 100), [128, 160]);
    const x = randn([1, 3, 100, 100]);
    const p = await s.probs(data(x), [1, 3, 100, 100]);
    assert.equal(p.length, 100 * 100);
    assert.ok(p.every((v) => v >= 0 && v <= 1), 'sigmoid probabilities');
    x.dispose();
    await assert.rejects(s.probs(new Float32Array(3 * 144 * 144), [1, 3, 144, 144]), {
      message: "OnnxSegmenter: input 144x144 is larger than the model's fixed size 128x160; export with --dynamic-size (or a larger --size)",
    });
    await assert.rejects(s.run(new Float32Array(5), [1, 3, 128, 160]), /OnnxSegmenter: expected 61440 values for input \[1, 3, 128, 160\] but received 5/);
  } finally {
    await s.release();
    one.dispose();
  }
});
