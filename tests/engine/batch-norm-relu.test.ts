// The fused training BatchNorm + ReLU (native/batch-norm-relu.cc). The oracle is ATen in float64: ATen's own
// float32 channels-last backward sums each channel in float32 and is itself up to 1e-1 off where the ReLU
// zeroes most of a channel (PyTorch 1.13 computes the same), so the fused float32 path is held to float64
// (1e-5) and to at most ATen float32's error. bfloat16 is held to ATen's bfloat16 kernels (one rounding).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { autocast, F, fusedKernels, manualSeed, ones, profileOps, randn, setFusedKernels, tidy, zeros, type Tensor } from '../../src/engine/index.js';
import { BatchNorm2d, Conv2d, ReLU, Sequential } from '../../src/nn/index.js';

const available = setFusedKernels(true);
after(() => setFusedKernels(true));

type Dtype = 'float32' | 'bfloat16' | 'float64';
interface Case { shape: number[]; affine: boolean; running: boolean; relu?: boolean }

/** Forward (with the ReLU unless relu: false) and backward in `dtype` (parameters and running statistics float32, or float64 with it). */
function run(fused: boolean, dtype: Dtype, x0: Tensor, gy: Tensor, w0: Tensor, b0: Tensor, k: Case) {
  setFusedKernels(fused);
  const p = dtype === 'float64' ? 'float64' : 'float32';
  const x = x0.to(dtype).clone().requiresGrad_(); // clones: to() returns the tensor itself when the dtype matches
  const w = k.affine ? w0.to(p).clone().requiresGrad_() : null;
  const b = k.affine ? b0.to(p).clone().requiresGrad_() : null;
  const c = x0.shape[1];
  const rm = k.running ? zeros([c], { dtype: p }) : null;
  const rv = k.running ? ones([c], { dtype: p }) : null;
  const y = F.batchNorm(x, rm, rv, { weight: w, bias: b, training: true, momentum: 0.1, eps: 1e-5, relu: k.relu ?? true });
  y.backward(gy.to(dtype));
  return { y, gx: x.grad!, gw: w?.grad ?? null, gb: b?.grad ?? null, rm, rv };
}
type Result = ReturnType<typeof run>;
const keys = ['y', 'gx', 'gw', 'gb', 'rm', 'rv'] as const;
const relErr = (p: Tensor, q: Tensor) => p.to('float64').sub(q.to('float64')).abs().max().item() / Math.max(q.to('float64').abs().max().item(), 1e-12);

function inputs(shape: number[]) {
  const x = randn(shape).mul(2).add(1).contiguous('channelsLast'); // a mean off zero: the pivot matters
  const gy = randn(shape).contiguous('channelsLast');
  return { x, gy, w: randn([shape[1]]), b: randn([shape[1]]) };
}

describe('fused training BatchNorm + ReLU (channels-last, AVX-512)', { skip: available ? false : 'needs an x86-64 CPU with AVX-512 F, BW and VL' }, () => {
  const cases: Case[] = [
    { shape: [4, 64, 32, 32], affine: true, running: true },
    { shape: [2, 37, 9, 7], affine: true, running: true },
    { shape: [3, 5, 4, 4], affine: false, running: true },
    { shape: [2, 24, 6, 5], affine: true, running: false },
    { shape: [3, 5, 4, 4], affine: false, running: false }, // no optional tensor given at all (backward's input indices)
  ];
  for (const k of cases) {
    it(`float32 [${k.shape}], ${k.affine ? 'affine' : 'no affine'}, ${k.running ? 'running stats' : 'no running stats'}: output, gradients and running stats within 1e-5 of float64, no worse than ATen float32`, () => tidy(() => {
      manualSeed(k.shape[1]);
      const d = inputs(k.shape);
      const ref = run(false, 'float64', d.x, d.gy, d.w, d.b, k);
      const aten = run(false, 'float32', d.x, d.gy, d.w, d.b, k);
      const fused = run(true, 'float32', d.x, d.gy, d.w, d.b, k);
      for (const name of keys) {
        const [r, a, f] = [ref[name], aten[name], fused[name]];
        if (!r || !a || !f) { assert.ok(!r && !a && !f, name); continue; }
        const err = relErr(f, r);
        assert.ok(err <= Math.max(1e-5, 1.5 * relErr(a, r)), `${name}: fused ${err}, ATen float32 ${relErr(a, r)}`);
      }
      assert.ok(fused.y.isContiguous('channelsLast') && fused.gx.isContiguous('channelsLast'), 'memory order');
      assert.ok(relErr(fused.gx, aten.gx) > 0, 'identical to ATen to the bit: the fused path did not run');
    }));
  }

  it('bfloat16 activations with float32 parameters (autocast\'s case): within one bfloat16 rounding of ATen\'s bfloat16 kernels', () => tidy(() => {
    manualSeed(7);
    const k: Case = { shape: [4, 48, 16, 16], affine: true, running: true };
    const d = inputs(k.shape);
    const ref = run(false, 'float64', d.x, d.gy, d.w, d.b, k);
    const aten = run(false, 'bfloat16', d.x, d.gy, d.w, d.b, k);
    const fused = run(true, 'bfloat16', d.x, d.gy, d.w, d.b, k);
    assert.equal(fused.y.dtype, 'bfloat16');
    assert.equal(fused.gx.dtype, 'bfloat16');
    assert.equal(fused.gw!.dtype, 'float32');
    for (const name of keys) {
      const err = relErr(fused[name]!, aten[name]!);
      assert.ok(err <= (name === 'y' || name === 'gx' ? 2 ** -7 : 1e-4), `${name} vs ATen bfloat16: ${err}`);
      assert.ok(relErr(fused[name]!, ref[name]!) <= 1.5 * relErr(aten[name]!, ref[name]!) + 1e-6, `${name} vs float64: fused ${relErr(fused[name]!, ref[name]!)}, ATen ${relErr(aten[name]!, ref[name]!)}`);
    }
  }));

  it('leaves to ATen what it does not cover: eval mode, NCHW, float64, no ReLU, and the setting off (bit-identical)', () => tidy(() => {
    manualSeed(8);
    const d = inputs([2, 16, 5, 5]);
    const same = (a: Result, b: Result) => { for (const name of keys) if (a[name]) assert.equal(relErr(b[name]!, a[name]!), 0, name); };
    const k: Case = { shape: [2, 16, 5, 5], affine: true, running: true };
    same(run(false, 'float32', d.x.contiguous(), d.gy.contiguous(), d.w, d.b, k), run(true, 'float32', d.x.contiguous(), d.gy.contiguous(), d.w, d.b, k));
    same(run(false, 'float64', d.x, d.gy, d.w, d.b, k), run(true, 'float64', d.x, d.gy, d.w, d.b, k));
    const evalMode = (fused: boolean) => { setFusedKernels(fused); return F.batchNorm(d.x, zeros([16]), ones([16]), { weight: d.w, bias: d.b, training: false, relu: true }); };
    assert.equal(relErr(evalMode(true), evalMode(false)), 0, 'eval');
    for (const dtype of ['float32', 'bfloat16'] as const) same(run(false, dtype, d.x, d.gy, d.w, d.b, { ...k, relu: false }), run(true, dtype, d.x, d.gy, d.w, d.b, { ...k, relu: false }));
    setFusedKernels(false);
    assert.equal(fusedKernels(), false);
    const names = profileOps({ step: () => { tidy(() => run(false, 'float32', d.x, d.gy, d.w, d.b, k)); } }, 1).map((r) => r.name);
    assert.ok(!names.includes('panseg::batch_norm_relu') && names.includes('aten::native_batch_norm'), names.join(', '));
    setFusedKernels(true);
  }));

  it('BatchNorm2d.forwardRelu and a Sequential\'s BatchNorm2d, ReLU pair run fused in training, and track batches as forward does', () => tidy(() => {
    manualSeed(9);
    const seq = new Sequential(new Conv2d(3, 8, 3, { padding: 1, bias: false }), new BatchNorm2d(8), new ReLU(true));
    seq.to({ memoryFormat: 'channelsLast' }).train();
    const x = randn([2, 3, 8, 8]).contiguous('channelsLast');
    const names = profileOps({ step: () => { tidy(() => seq.forward(x).sum().backward()); } }, 1).map((r) => r.name);
    assert.ok(names.includes('panseg::batch_norm_relu') && names.includes('panseg::batch_norm_relu_backward'), names.join(', '));
    assert.ok(!names.includes('aten::relu_') && !names.includes('aten::threshold_backward'), names.join(', '));
    const bn = seq.at(1) as BatchNorm2d;
    assert.equal(new Map(bn.namedBuffers()).get('num_batches_tracked')!.item(), 1);
    // the same values as the layers one by one (fused off)
    setFusedKernels(false);
    const y0 = seq.forward(x);
    setFusedKernels(true);
    const y1 = seq.forward(x);
    assert.ok(relErr(y1, y0) < 1e-5, String(relErr(y1, y0)));
    seq.eval();
    assert.equal(relErr(seq.forward(x), (seq.at(2) as ReLU).forward(bn.forward((seq.at(0) as Conv2d).forward(x)))), 0, 'eval: the plain layers');
  }));

  it('under autocast, a channels-last training step: BatchNorm + ReLU in bfloat16 through the fused op', () => tidy(() => {
    manualSeed(10);
    const seq = new Sequential(new Conv2d(3, 16, 3, { padding: 1, bias: false }), new BatchNorm2d(16), new ReLU(true));
    seq.to({ memoryFormat: 'channelsLast' }).train();
    const x = randn([2, 3, 8, 8]).contiguous('channelsLast');
    const y = autocast(() => seq.forward(x));
    assert.equal(y.dtype, 'bfloat16');
    y.to('float32').sum().backward();
    for (const p of seq.parameters()) assert.ok(p.grad && Number.isFinite(p.grad.abs().sum().item()));
  }));
});
