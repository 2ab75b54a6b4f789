// optimizedForInference: BatchNorm folded (float32 outputs within 1e-4 of the original model),
// the blocked (mkldnn) layout against the model on several configurations, and building the copy
// leaves the caller's random stream untouched.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpuFeatures, dispose, liveTensors, manualSeed, noGrad, rand, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { predictProbs } from '../../src/eval/inference.js';
import { architectures, createModel, PAN } from '../../src/models/index.js';
import { BatchNorm2d } from '../../src/nn/index.js';

it('optimizedForInference matches the model and does not consume random numbers', () => {
  manualSeed(0);
  const m = new PAN({ encoderName: 'resnet18', encoderDepth: 4, classes: 3, decoderChannels: 16 });
  m.train();
  noGrad(() => tidy(() => { m.forward(randn([2, 3, 128, 128])); })); // non-trivial running statistics
  m.eval();
  manualSeed(7);
  const fast = m.optimizedForInference({ channelsLast: true });
  const after = rand([4]).toNumbers();
  manualSeed(7);
  assert.deepEqual(after, rand([4]).toNumbers());
  tidy(() => {
    const x = randn([1, 3, 128, 128]);
    const d = fast.predict(x).sub(m.predict(x)).abs().max().item();
    assert.ok(d <= 1e-4, `folded output differs by ${d}`);
  });
  fast.dispose();
  m.dispose();
});

// The default copy on CPU: convolution weights packed for oneDNN, encoder activations blocked.
// Tolerance: max |diff| <= 2e-5 x max |logits| (float32 rounding in a different summation order;
// measured 1e-6 to 4e-6, as PyTorch's own frozen mkldnn graph vs eager).
const PARITY: [string, ConstructorParameters<typeof PAN>[0], number[]][] = [
  ['resnet18, OS 16, batch 2, non-square, aux head', { encoderName: 'resnet18', classes: 3, auxParams: { classes: 4 } }, [2, 3, 128, 192]],
  ['resnet34, OS 16, non-square', { encoderName: 'resnet34', classes: 5 }, [1, 3, 160, 128]],
  ['resnet18, OS 8, batch 2, depth 4', { encoderName: 'resnet18', encoderOutputStride: 8, encoderDepth: 4, classes: 2 }, [2, 3, 64, 96]],
  ['resnet34, OS 8, nearest GAU upsampling', { encoderName: 'resnet34', encoderOutputStride: 8, classes: 1, decoderInterpolation: 'nearest' }, [1, 3, 64, 64]],
];

function calibrated(o: ConstructorParameters<typeof PAN>[0]): PAN {
  manualSeed(0);
  const m = new PAN(o);
  m.train();
  noGrad(() => tidy(() => { m.forward(randn([2, 3, 128, 128])); })); // non-trivial running statistics
  return m.eval();
}

describe('the blocked (mkldnn) inference copy', () => {
  for (const [name, opts, shape] of PARITY) {
    it(`matches the model: ${name}`, () => {
      const m = calibrated(opts);
      const fast = m.optimizedForInference();
      assert.deepEqual(fast.inferenceLayout, { mkldnn: true, channelsLast: false, dtype: 'float32' });
      tidy(() => {
        const x = randn(shape);
        const want = noGrad(() => m.forwardWithAux(x));
        const got = noGrad(() => fast.forwardWithAux(x));
        assert.equal(got.masks.layout, 'strided');
        assert.deepEqual(got.masks.shape, want.masks.shape);
        const scale = want.masks.abs().max().item();
        const d = got.masks.sub(want.masks).abs().max().item();
        assert.ok(d <= 2e-5 * scale, `logits differ by ${d} (scale ${scale})`);
        if (want.labels) assert.ok(got.labels!.sub(want.labels).abs().max().item() <= 2e-5 * want.labels.abs().max().item());
      });
      fast.dispose();
      m.dispose();
    });
  }

  it('keeps attention capture, predictProbs and the random stream working', () => {
    const m = calibrated({ encoderName: 'resnet18', classes: 3 });
    manualSeed(7);
    const fast = m.optimizedForInference();
    const after = rand([4]).toNumbers();
    manualSeed(7);
    assert.deepEqual(after, rand([4]).toNumbers());
    tidy(() => {
      const x = randn([1, 3, 128, 160]);
      const want = noGrad(() => m.forwardWithAttention(x));
      const got = noGrad(() => fast.forwardWithAttention(x));
      const close = (a: Tensor, b: Tensor) => a.sub(b).abs().max().item() <= 2e-5 * Math.max(1, b.abs().max().item());
      assert.ok(close(got.attention.fpa!.attention, want.attention.fpa!.attention));
      for (const k of Object.keys(want.attention.gau)) {
        assert.equal(got.attention.gau[k].layout, 'strided');
        assert.ok(close(got.attention.gau[k], want.attention.gau[k]), k);
        assert.ok(close(got.attention.gauParts![k].lowLevel, want.attention.gauParts![k].lowLevel), k);
      }
      const p = predictProbs(fast, randn([1, 3, 100, 90]), { flip: true });
      assert.deepEqual(p.shape, [1, 3, 100, 90]);
      dispose([want.attention.fpa, got.attention.fpa]);
    });
    fast.dispose();
    m.dispose();
  });

  it('runs bfloat16 blocked (the default on AMX; channels-last elsewhere), within bfloat16 rounding', () => {
    const m = calibrated({ encoderName: 'resnet18', classes: 3 });
    const byDefault = m.optimizedForInference({ dtype: 'bfloat16' });
    assert.deepEqual(byDefault.inferenceLayout, cpuFeatures().amx ? { mkldnn: true, channelsLast: false, dtype: 'bfloat16' } : { mkldnn: false, channelsLast: true, dtype: 'bfloat16' });
    byDefault.dispose();
    const fast = m.optimizedForInference({ dtype: 'bfloat16', layout: 'mkldnn' });
    tidy(() => {
      const x = randn([1, 3, 128, 128]);
      const want = m.predict(x);
      const got = fast.predict(x);
      assert.equal(got.dtype, 'float32');
      const rel = got.sub(want).abs().max().item() / want.abs().max().item();
      assert.ok(rel <= 0.1, `bfloat16 logits differ by ${rel} of their scale`);
    });
    fast.dispose();
    m.dispose();
  });

  it('explains options that do not combine', () => {
    const m = new PAN({ encoderName: 'resnet18', classes: 2 });
    assert.throws(() => m.optimizedForInference({ layout: 'mkldnn', channelsLast: true }), { message: "optimizedForInference: channelsLast applies to the strided layout; drop it or pass layout: 'strided'" });
    assert.throws(() => m.optimizedForInference({ layout: 'mkldnn', dtype: 'float16' }), { message: "optimizedForInference: the mkldnn layout supports float32 and bfloat16, not float16; use layout: 'strided'" });
    assert.throws(() => m.optimizedForInference({ layout: 'blocked' as never }), { message: "optimizedForInference: expected one of 'mkldnn', 'strided' for layout but received 'blocked' of type string" });
    const strided = m.optimizedForInference({ channelsLast: false });
    assert.deepEqual(strided.inferenceLayout, { mkldnn: false, channelsLast: false, dtype: 'float32' });
    strided.dispose();
    m.dispose();
  });

  it('frees every tensor it made', () => {
    const base = liveTensors();
    const m = new PAN({ encoderName: 'resnet18', classes: 2 }).eval();
    const fast = m.optimizedForInference();
    const held = liveTensors();
    const x = randn([1, 3, 128, 128]);
    for (let i = 0; i < 3; i++) fast.predict(x).dispose();
    noGrad(() => dispose(fast.forwardWithAttention(x)));
    x.dispose();
    assert.equal(liveTensors(), held);
    fast.dispose();
    m.dispose();
    assert.equal(liveTensors(), base);
  });
});

// The one conv/BatchNorm rule (models/base/fuse.ts) finds every pair in every architecture, including a
// BatchNorm after a Sequential ending in a conv (DeepLab's separable convolutions).
describe('BatchNorm folding in every architecture', () => {
  for (const spec of architectures()) {
    it(`${spec.name}: the inference copy keeps no BatchNorm2d, with both ASPP kinds for DeepLab`, () => {
      const separable = spec.name.startsWith('DeepLab') ? { decoderAsppSeparable: true } : {};
      const m = createModel(spec.id, { encoderName: 'resnet18', classes: 2, ...separable });
      const fast = m.optimizedForInference({ layout: 'strided' });
      const left = [...fast.namedModules()].filter(([, l]) => l instanceof BatchNorm2d).map(([n]) => n);
      assert.deepEqual(left, []);
      fast.dispose();
      m.dispose();
    });
  }
});

it('an encoder that runs faster strided (MobileNetV2) gets a channels-last default copy; layout: mkldnn still works', () => {
  const m = createModel('pan', { encoderName: 'mobilenet_v2', classes: 2 }).eval();
  const fast = m.optimizedForInference();
  assert.deepEqual(fast.inferenceLayout, { mkldnn: false, channelsLast: true, dtype: 'float32' });
  fast.dispose();
  const blocked = m.optimizedForInference({ layout: 'mkldnn' });
  assert.equal(blocked.inferenceLayout!.mkldnn, true);
  blocked.dispose();
  m.dispose();
});
