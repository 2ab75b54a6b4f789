// The encoders beyond ResNet (MobileNetV2, ResNeXt): the shared model tester with PyTorch parity
// (scripts/reference/encoder_cases.py), the module tree and dilation against smp's
// (scripts/reference/encoders_model.py), every architecture at every output stride it takes, and
// ImageNet checkpoints in torchvision's layout. resnext101_32x4d/32x8d are checked for keys, shapes
// and dilation only (a parity run of a 42M-87M-parameter encoder would dominate the suite); the
// 32x16d/32x32d/32x48d entries are the same code with a wider widthPerGroup.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors, manualSeed, noGrad, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { architectures, createEncoder, createModel, ENCODERS, preprocessingParams } from '../../src/models/index.js';
import { foldBatchNorms } from '../../src/models/base/fuse.js';
import { BatchNorm2d, Conv2d } from '../../src/nn/index.js';
import { reference } from '../helpers/reference.js';
import { testArchitecture } from './model-tester.js';

const DEPS = ['encoders_model.py', 'pan_model.py', 'unet_model.py', 'fpn_model.py', 'pan_cases.py', 'unet_cases.py', 'fpn_cases.py', 'cases_common.py', 'st.py'];
const same = (a: Tensor, b: Tensor) => a.shape.join() === b.shape.join() && tidy(() => a.eq(b).all().item()) === 1;
const cases = (...names: string[]) => ({ script: 'encoder_cases.py', deps: DEPS, args: names });
const PAN_CASES = ['pan_mnv2_os16_aux', 'pan_mnv2_os8', 'pan_mnv2_os32_in1', 'pan_mnv2_d3', 'pan_mnv2_tv_in4'];

testArchitecture({ arch: 'pan', options: { encoderName: 'mobilenet_v2', decoderChannels: 16 }, size: 128, reference: cases(...PAN_CASES) });
testArchitecture({ arch: 'unet', options: { encoderName: 'mobilenet_v2', decoderChannels: [32, 32, 16, 16, 16] }, size: 64, reference: cases('unet_mnv2', 'unet_mnv2_d4_nonsq') });
testArchitecture({ arch: 'fpn', options: { encoderName: 'resnext50_32x4d', decoderPyramidChannels: 32, decoderSegmentationChannels: 32 }, size: 64, reference: cases('fpn_rx50') });

interface EncoderFacts {
  out_channels: number[];
  trainable: number;
  keys: [string, number[]][];
  strides: Record<string, { convs: Record<string, [number[], number[], number[]]>; features?: number[][] }>;
}

describe('encoders: module tree and dilation as smp builds them', () => {
  const facts = JSON.parse(readFileSync(join(reference('encoders_model.py', [], ['pan_model.py']), 'encoders.json'), 'utf8')) as Record<string, EncoderFacts>;
  for (const [name, want] of Object.entries(facts)) {
    it(`${name}: state_dict keys and shapes, parameter count, out channels; conv geometry and feature shapes at output stride 32, 16, 8`, () => {
      const live = liveTensors();
      for (const os of [32, 16, 8] as const) {
        const enc = createEncoder(name, { outputStride: os });
        if (os === 32) {
          assert.deepEqual([...enc.stateDict()].map(([k, t]) => [k, t.shape]), want.keys);
          assert.equal(enc.numParameters(true), want.trainable);
          assert.deepEqual(enc.outChannels, want.out_channels);
        }
        const convs = Object.fromEntries([...enc.namedModules()].filter(([, m]) => m instanceof Conv2d).map(([n, m]) => {
          const c = m as Conv2d;
          return [n, [c.stride, c.padding, c.dilation]];
        }));
        assert.deepEqual(convs, want.strides[String(os)].convs, `conv geometry at output stride ${os}`);
        const shapes = want.strides[String(os)].features;
        if (shapes) {
          enc.eval();
          tidy(() => assert.deepEqual(noGrad(() => enc.features(randn([2, 3, 64, 64]))).map((f) => f.shape), shapes));
        }
        enc.dispose();
      }
      assert.equal(liveTensors(), live, 'tensors leaked');
    });
  }

  it('depth 3 and 4 return that many features (plus the input); outputStride is min(requested, 2^depth)', () => {
    for (const depth of [3, 4] as const) {
      const enc = createEncoder('mobilenet_v2', { depth, outputStride: 16 }).eval();
      assert.deepEqual(enc.outChannels, [3, 16, 24, 32, 96].slice(0, depth + 1));
      assert.equal(enc.outputStride, Math.min(16, 2 ** depth));
      tidy(() => assert.deepEqual(enc.features(randn([1, 3, 64, 64])).map((f) => f.shape[1]), enc.outChannels));
      enc.dispose();
    }
  });

  it('BatchNorm folding finds every conv/BatchNorm pair by the one rule (Conv2dNormActivation and InvertedResidual.conv)', () => {
    const enc = createEncoder('mobilenet_v2').eval();
    assert.equal(foldBatchNorms(enc), 52);
    assert.ok(![...enc.namedModules()].some(([, m]) => m instanceof BatchNorm2d));
    enc.dispose();
  });

  it('the first conv is found by its input channels (features.0.0 for mobilenet_v2) and patched', () => {
    const enc = createEncoder('mobilenet_v2', { inChannels: 5 });
    assert.deepEqual(enc.stateDict().get('features.0.0.weight')!.shape, [32, 5, 3, 3]);
    assert.equal(enc.outChannels[0], 5);
    enc.dispose();
  });

  it('preprocessing: ImageNet mean and std for every new encoder (smp\'s)', () => {
    // resnext101_32x4d has only ssl/swsl weights: its default is the first of them (same values).
    for (const name of ['mobilenet_v2', 'resnext50_32x4d', 'resnext101_32x4d', 'resnext101_32x8d']) {
      assert.deepEqual(preprocessingParams(name), { inputSpace: 'RGB', inputRange: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    }
    assert.deepEqual(Object.keys(ENCODERS.resnext101_32x8d.preprocessing), ['imagenet', 'instagram', 'ssl', 'swsl']);
    assert.throws(() => preprocessingParams('mobilenet_v2', 'ssl'), { message: "preprocessingParams: encoder 'mobilenet_v2' has no 'ssl' weights; available: imagenet" });
  });
});

describe('encoders: ImageNet checkpoints in torchvision\'s layout', () => {
  it('mobilenet_v2_tv.pth (classifier dropped) loads into PAN with inChannels 4, patched as smp does', () => {
    const dir = reference('encoder_cases.py', PAN_CASES, DEPS);
    const want = loadSafetensors(join(dir, 'pan_mnv2_tv_in4', 'model.safetensors'));
    const m = createModel('pan', { encoderName: 'mobilenet_v2', decoderChannels: 16, inChannels: 4, classes: 2, encoderWeights: join(dir, 'mobilenet_v2_tv.pth') });
    let n = 0;
    for (const [k, t] of m.encoder.stateDict()) {
      const w = want.get(`encoder.${k}`)!;
      assert.ok(same(t, w), k);
      n++;
    }
    assert.equal(n, [...want.keys()].filter((k) => k.startsWith('encoder.')).length);
    for (const t of want.values()) t.dispose();
    m.dispose();
  });

  it('resnext50_32x4d: a torchvision state dict with fc.* loads; 1 input channel sums the RGB kernel', () => {
    manualSeed(3);
    const src = createEncoder('resnext50_32x4d');
    const sd = new Map(src.stateDict());
    const fc = [randn([1000, 2048]), randn([1000])];
    sd.set('fc.weight', fc[0]);
    sd.set('fc.bias', fc[1]);
    const dst = createEncoder('resnext50_32x4d', { inChannels: 1, outputStride: 8 });
    dst.loadImagenet(sd);
    for (const [k, t] of dst.stateDict()) {
      const expect = k === 'conv1.weight' ? tidy(() => sd.get(k)!.sum(1, true)) : sd.get(k)!;
      assert.ok(same(t, expect), k);
      if (k === 'conv1.weight') expect.dispose();
    }
    assert.throws(() => dst.loadImagenet(new Map([['bogus', fc[1]]])), { message: /^loadStateDict: missing keys: conv1.weight, / });
    for (const t of fc) t.dispose();
    src.dispose();
    dst.dispose();
  });
});

describe('encoders: every architecture at every output stride it takes', () => {
  for (const encoderName of ['mobilenet_v2', 'resnext50_32x4d']) {
    for (const spec of architectures()) {
      const strides = 'encoderOutputStride' in spec.defaults ? [8, 16, 32] : [null];
      for (const os of strides) {
        it(`${spec.name}-${encoderName}${os ? ` at output stride ${os}` : ''}`, (t) => {
          let m;
          try {
            manualSeed(0);
            m = createModel(spec.id, { encoderName, classes: 2, ...(os ? { encoderOutputStride: os } : {}) });
          } catch (e) {
            // The architecture refuses this stride (as smp does): nothing to build.
            assert.match((e as Error).message, /encoderOutputStride/);
            t.skip(`${spec.name} refuses output stride ${os}`);
            return;
          }
          const size = Math.max(64, m.minInputSize);
          m.eval();
          tidy(() => {
            const y = m.predict(randn([1, 3, size, size]));
            assert.equal(y.shape[1], 2);
            assert.ok((y.isfinite().all().item() as number) === 1);
          });
          assert.equal(m.encoder.outputStride, Math.min(os ?? 32, 2 ** m.config.encoderDepth));
          m.dispose();
        });
      }
    }
  }
});
