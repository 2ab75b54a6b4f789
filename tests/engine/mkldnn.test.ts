// oneDNN's blocked ('mkldnn') layout: conversions, the packed convolution against F.conv2d,
// clear errors for ops without blocked kernels, and no leaked handles.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, liveTensors, manualSeed, mkldnnConv2d, packConv2dWeight, randn, tidy, winogradApplies, winogradAvailable } from '../../src/engine/index.js';

const maxDiff = (a: { sub(b: never): { abs(): { max(): { item(): number } } } }, b: unknown) => a.sub(b as never).abs().max().item();

describe('blocked layout', () => {
  it('round-trips values and reports its layout', () => tidy(() => {
    const x = randn([2, 5, 7, 3]);
    const b = x.toMkldnn();
    assert.equal(x.layout, 'strided');
    assert.equal(b.layout, 'mkldnn');
    assert.equal(b.isMkldnn, true);
    assert.deepEqual(b.shape, [2, 5, 7, 3]);
    assert.equal(b.dtype, 'float32');
    assert.deepEqual(b.toDense().toArray(), x.toArray());
    assert.equal(b.toMkldnn('bfloat16').dtype, 'bfloat16');
    assert.equal(b.toMkldnn('bfloat16').toDense('float32').dtype, 'float32');
    assert.equal(x.toDense().layout, 'strided'); // a strided tensor passes through
  }));

  const cases: [string, number[], number[], { stride?: number; padding?: number; dilation?: number; groups?: number }][] = [
    ['3x3 pad 1', [2, 16, 12, 9], [32, 16, 3, 3], { padding: 1 }],
    ['7x7 stride 2, 3 input channels', [1, 3, 33, 20], [64, 3, 7, 7], { stride: 2, padding: 3 }],
    ['dilated 3x3', [1, 32, 16, 16], [32, 32, 3, 3], { padding: 2, dilation: 2 }],
    ['1x1 stride 2', [2, 24, 10, 10], [48, 24, 1, 1], { stride: 2 }],
    ['grouped', [1, 8, 9, 9], [8, 4, 3, 3], { padding: 1, groups: 2 }],
    ['1 channel 5x5', [1, 1, 8, 8], [1, 1, 5, 5], { padding: 2 }],
  ];
  for (const [name, xs, ws, o] of cases) {
    it(`packed convolution matches conv2d: ${name}`, () => tidy(() => {
      manualSeed(1);
      const x = randn(xs);
      const w = randn(ws);
      const bias = randn([ws[0]]);
      const ref = F.conv2d(x, w, bias, o);
      const packed = packConv2dWeight(w, o);
      assert.equal(packed.layout, 'mkldnn');
      const blocked = mkldnnConv2d(x.toMkldnn(), packed, bias, o);
      assert.equal(blocked.layout, 'mkldnn');
      const strided = mkldnnConv2d(x, packed, null, { ...o, blockedOutput: false });
      assert.equal(strided.layout, 'strided');
      const tol = 1e-5 * ref.abs().max().item();
      assert.ok(maxDiff(blocked.toDense(), ref) <= tol);
      assert.ok(maxDiff(strided, F.conv2d(x, w, null, o)) <= tol);
    }));
  }

  it('Winograd and a fused ReLU match conv2d within float32 rounding', { skip: !winogradAvailable() && 'panseg was built without ideep (libideep-dev)' }, () => tidy(() => {
    manualSeed(3);
    for (const shape of [[2, 64, 20, 36], [1, 256, 16, 16]]) {
      const x = randn(shape);
      const w = randn([shape[1], shape[1], 3, 3]).mul(0.05);
      const bias = randn([shape[1]]);
      assert.equal(winogradApplies(w.shape, { padding: 1 }), true);
      const ref = F.conv2d(x, w, bias, { padding: 1 }).relu();
      const packed = packConv2dWeight(w, { padding: 1, algorithm: 'winograd' });
      const y = mkldnnConv2d(x.toMkldnn(), packed, bias, { padding: 1, algorithm: 'winograd', relu: true, blockedOutput: false });
      assert.ok(maxDiff(y, ref) <= 1e-5 * ref.abs().max().item(), `Winograd ${shape.join('x')}`);
    }
    assert.equal(winogradApplies([64, 64, 3, 3], { padding: 2, dilation: 2 }), false);
    assert.equal(winogradApplies([64, 3, 3, 3], { padding: 1 }), false);
  }));

  it('runs bfloat16 within bfloat16 rounding', () => tidy(() => {
    manualSeed(2);
    const x = randn([1, 16, 8, 8]);
    const w = randn([16, 16, 3, 3]);
    const ref = F.conv2d(x, w, null, { padding: 1 });
    const y = mkldnnConv2d(x.toMkldnn('bfloat16'), packConv2dWeight(w.to('bfloat16'), { padding: 1 }), null, { padding: 1 });
    assert.equal(y.dtype, 'bfloat16');
    assert.ok(maxDiff(y.toDense('float32'), ref) <= 2e-2 * ref.abs().max().item());
  }));

  it('supports ReLU, add, max and average pooling in place of the encoder', () => tidy(() => {
    const x = randn([1, 16, 8, 8]);
    const b = x.toMkldnn();
    assert.deepEqual(b.add(b).toDense().toArray(), x.add(x).toArray());
    assert.deepEqual(b.clone().relu_().toDense().toArray(), x.relu().toArray());
    assert.deepEqual(F.maxPool2d(b, 2).toDense().toArray(), F.maxPool2d(x, 2).toArray());
    assert.ok(maxDiff(F.adaptiveAvgPool2d(b, 1).toDense(), F.adaptiveAvgPool2d(x, 1)) < 1e-6);
  }));

  it('names the op and the fix when an op has no blocked kernel', () => tidy(() => {
    const b = randn([1, 2, 4, 4]).toMkldnn();
    const hint = "in oneDNN's blocked layout (layout 'mkldnn'), which";
    assert.throws(() => b.toArray(), { message: `toArray: this tensor is ${hint} toArray does not support; convert it with toDense() first` });
    assert.throws(() => b.sum(), { message: `sum: this tensor is ${hint} sum does not support; convert it with toDense() first` });
    assert.throws(() => b.view([-1]), { message: `view: this tensor is ${hint} view does not support; convert it with toDense() first` });
    assert.throws(() => F.interpolate(b, { size: [8, 8], mode: 'bilinear' }), { message: `interpolate: the input is ${hint} interpolate does not support; convert it with toDense() first` });
    assert.throws(() => randn([1, 2, 4, 4]).add(b), { message: "add: mixes strided and blocked ('mkldnn') tensors; convert one with toDense() or toMkldnn() so the layouts match" });
    assert.throws(() => randn([2]).toMkldnn('float16' as never), { message: "toMkldnn: expected one of 'float32', 'bfloat16' for dtype but received 'float16' of type string" });
    assert.throws(() => randn([2], { dtype: 'float64' }).toMkldnn(), { message: 'toMkldnn: expected a float32 or bfloat16 tensor, got float64' });
  }));

  it('validates the packed convolution', () => tidy(() => {
    const w = randn([4, 8, 3, 3]);
    const packed = packConv2dWeight(w, { padding: 1 });
    assert.throws(() => mkldnnConv2d(randn([1, 8, 6, 6]), w), { message: 'mkldnnConv2d: packedWeight must come from packConv2dWeight (blocked layout), got a strided tensor' });
    assert.throws(() => mkldnnConv2d(randn([1, 3, 6, 6]), packed), { message: 'mkldnnConv2d: input has 3 channels but the weight expects 8' });
    assert.throws(() => mkldnnConv2d(randn([8, 6, 6]), packed), { message: 'mkldnnConv2d: expected input of 4 dims [N, C, H, W], got [8, 6, 6]' });
    assert.throws(() => mkldnnConv2d(randn([1, 8, 6, 6]).toMkldnn('bfloat16'), packed), { message: "mkldnnConv2d: input is bfloat16 but the weight is float32; convert the input with toMkldnn('float32')" });
    assert.throws(() => mkldnnConv2d(randn([1, 8, 6, 6]), packed, randn([3])), { message: 'mkldnnConv2d: expected bias of shape [4], got [3]' });
    assert.throws(() => packConv2dWeight(randn([4, 8, 3])), { message: 'packConv2dWeight: expected a weight of 4 dims [O, C/groups, kH, kW], got [4, 8, 3]' });
  }));

  it('leaks no handles', () => {
    const w = randn([8, 8, 3, 3]);
    const packed = packConv2dWeight(w, { padding: 1 });
    const base = liveTensors();
    for (let i = 0; i < 50; i++) {
      tidy(() => {
        const x = randn([1, 8, 8, 8]);
        const y = mkldnnConv2d(mkldnnConv2d(x, packed, null, { padding: 1 }).relu_(), packed, null, { padding: 1, blockedOutput: false });
        y.toMkldnn().toDense().sum().item();
      });
    }
    assert.equal(liveTensors(), base);
    packed.dispose();
    w.dispose();
  });
});
