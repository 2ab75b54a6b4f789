// Neural-network ops against PyTorch: conv2d, batchNorm, groupNorm, pooling, interpolate, linear,
// dropout, dropout2d, oneHot and bfloat16 autocast.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, autocast, manualSeed, noGrad, ones, randn, tidy, zeros } from '../../src/engine/index.js';
import { PansegError } from '../../src/common/errors.js';
import { Dropout2d, GroupNorm } from '../../src/nn/index.js';
import { ACCUM, ELEMENTWISE, EXACT, assertClose, checkCase, refCase, refCases } from './ref-cases.js';

describe('conv2d (accumulates: atol 1e-5 + rtol 1e-5)', () => {
  for (const c of refCases('conv2d/')) {
    it(c.name, () => checkCase(c, ({ x, w, b }, p) => F.conv2d(x, w, b ?? null, p), ACCUM));
  }
});

describe('batchNorm (atol 1e-5 + rtol 1e-5: batch statistics are reductions)', () => {
  for (const c of refCases('batchNorm/')) {
    it(c.name, () => checkCase(c, ({ x, w, b, rm, rv }, p) => {
      const y = F.batchNorm(x, rm ?? null, rv ?? null, { weight: w, bias: b, ...p });
      // Training updates the running statistics in place (momentum 0.2, unbiased variance).
      return c.outputNames.includes('runningMean') ? { y, runningMean: rm, runningVar: rv } : y;
    }, ACCUM));
  }
});

describe('groupNorm (atol 1e-5 + rtol 1e-5: group statistics are reductions)', () => {
  for (const c of refCases('groupNorm/')) {
    it(c.name, () => checkCase(c, ({ x, w, b }, p) => F.groupNorm(x, p.numGroups, { weight: w ?? null, bias: b ?? null, eps: p.eps }), ACCUM));
  }
  it('GroupNorm layer: PyTorch\'s parameter names and init (weight 1, bias 0), the same in train and eval', () => tidy(() => {
    const gn = new GroupNorm(2, 6);
    assert.deepEqual([...gn.stateDict().keys()], ['weight', 'bias']);
    assert.deepEqual(gn.weight!.toNumbers(), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(gn.bias!.toNumbers(), [0, 0, 0, 0, 0, 0]);
    const c = refCase('groupNorm/g2_4d');
    noGrad(() => { gn.weight!.copy_(c.input('w')); gn.bias!.copy_(c.input('b')); });
    const x = c.input('x');
    assertClose(gn.forward(x), c.output('y'), ACCUM, 'train mode');
    gn.eval();
    assertClose(gn.forward(x), c.output('y'), ACCUM, 'eval mode');
    assert.deepEqual([...new GroupNorm(3, 6, { affine: false }).stateDict().keys()], []);
  }));
  it('GroupNorm layer: bfloat16 inputs (channels-last too, and under autocast) are normalized in float32', () => tidy(() => {
    const gn = new GroupNorm(32, 256);
    noGrad(() => { gn.weight!.copy_(randn([256])); gn.bias!.copy_(randn([256])); });
    const x = randn([2, 256, 32, 64]).mul(3).add(2);
    const want = gn.forward(x);
    // One bfloat16 rounding of the input and one of the output: within 2^-7 relative plus the input's share.
    const tol = { atol: 0.05, rtol: 2 ** -7 };
    for (const xb of [x.to('bfloat16'), x.to('bfloat16').contiguous('channelsLast')]) {
      const y = gn.forward(xb);
      assert.equal(y.dtype, 'bfloat16');
      assertClose(y.to('float32'), want, tol, 'bfloat16 input');
    }
    const ya = autocast(() => gn.forward(x.to('bfloat16')));
    assertClose(ya.to('float32'), want, tol, 'under autocast');
  }));
  it('errors name the layer or op, with the numbers', () => tidy(() => {
    const cases: [() => unknown, string][] = [
      [() => new GroupNorm(32, 48), 'GroupNorm: numChannels 48 must be divisible by numGroups 32'],
      [() => new GroupNorm(0, 48), 'GroupNorm: expected positive integer for numGroups but received 0 of type number'],
      [() => new GroupNorm(2, 4).forward(randn([1, 6, 2, 2])), 'GroupNorm: expected input [N, 4, ...], got [1, 6, 2, 2]'],
      [() => F.groupNorm(randn([1, 6, 2, 2]), 4), 'groupNorm: input has 6 channels, which are not divisible by numGroups 4'],
      [() => F.groupNorm(randn([1, 6, 2, 2]), 2, { weight: ones([3]) }), 'groupNorm: expected weight of shape [6], got [3]'],
      [() => F.groupNorm(randn([6]), 2), 'groupNorm: expected input of at least 2 dims [N, C, ...], got [6]'],
    ];
    for (const [fn, want] of cases) assert.throws(fn, (e: unknown) => e instanceof PansegError && e.message === want, want);
  }));
});

describe('pooling', () => {
  for (const c of refCases('maxPool2d/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => F.maxPool2d(x, p.kernel, p), EXACT));
  }
  for (const c of refCases('avgPool2d/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => F.avgPool2d(x, p.kernel, p), ACCUM));
  }
  for (const c of refCases('adaptiveAvgPool2d/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => F.adaptiveAvgPool2d(x, p.size), ACCUM));
  }
  for (const c of refCases('adaptiveMaxPool2d/')) {
    it(c.name, () => checkCase(c, ({ x }, p) => F.adaptiveMaxPool2d(x, p.size), EXACT));
  }
});

describe('interpolate (bilinear alignCorners true/false, nearest; size and scaleFactor)', () => {
  for (const c of refCases('interpolate/')) {
    // Bilinear weights are computed in float and each output sums 4 terms; gradients sum many.
    it(c.name, () => checkCase(c, ({ x }, p) => F.interpolate(x, p), ELEMENTWISE, ACCUM));
  }
});

describe('linear', () => {
  for (const c of refCases('linear/')) it(c.name, () => checkCase(c, ({ x, w, b }) => F.linear(x, w, b ?? null), ACCUM));
});

describe('dropout', () => {
  for (const c of refCases('dropout/')) it(c.name, () => checkCase(c, ({ x }, p) => F.dropout(x, p.p, p.training), EXACT));
  it('statistics: about p of the elements are zeroed and the rest scaled by 1/(1-p)', () => tidy(() => {
    manualSeed(3);
    const n = 200_000;
    for (const p of [0.1, 0.5, 0.8]) {
      const y = F.dropout(ones([n]), p, true);
      const zeroFrac = y.eq(0).sum().item() / n;
      // Binomial: the standard deviation of the fraction is sqrt(p(1-p)/n) <= 0.0012; allow 5 sigma.
      assert.ok(Math.abs(zeroFrac - p) < 0.006, `p=${p}: zeroed fraction ${zeroFrac}`);
      const kept = y.ne(0);
      const vals = new Set(y.toNumbers().filter((v) => v !== 0).map((v) => Math.fround(v)));
      assert.deepEqual([...vals], [Math.fround(1 / (1 - p))]);
      // The mean is preserved in expectation.
      assert.ok(Math.abs(y.mean().item() - 1) < 0.02, `p=${p}: mean ${y.mean().item()}`);
      assert.equal(kept.dtype, 'bool');
    }
  }));
  it('is the identity when not training', () => tidy(() => {
    const x = randn([50]);
    assert.deepEqual(F.dropout(x, 0.9, false).toArray(), x.toArray());
  }));
});

describe('dropout2d', () => {
  for (const c of refCases('dropout2d/')) it(c.name, () => checkCase(c, ({ x }, p) => F.dropout2d(x, p.p, p.training), EXACT));
  it('statistics: whole channels are zeroed with probability p, the rest scaled by 1/(1-p)', () => tidy(() => {
    manualSeed(5);
    const [n, ch, hw] = [400, 250, 9];
    for (const p of [0.2, 0.5]) {
      const y = F.dropout2d(ones([n, ch, 3, 3]), p, true);
      // Per channel, either all 9 values are 0 or all are 1/(1-p).
      const zerosPerChannel = y.eq(0).sum([2, 3]).toNumbers();
      assert.ok(zerosPerChannel.every((z) => z === 0 || z === hw), `p=${p}: a channel was partly dropped`);
      const frac = zerosPerChannel.filter((z) => z === hw).length / (n * ch);
      // Binomial over 100,000 channels: standard deviation <= 0.0016; allow 5 sigma.
      assert.ok(Math.abs(frac - p) < 0.008, `p=${p}: dropped fraction ${frac}`);
      assert.deepEqual([...new Set(y.toNumbers().filter((v) => v !== 0))], [Math.fround(1 / (1 - p))]);
    }
  }));
  it('Dropout2d layer: drops when training, the identity in eval mode', () => tidy(() => {
    manualSeed(6);
    const d = new Dropout2d(0.5);
    const x = randn([4, 8, 2, 2]);
    assert.ok(d.forward(x).eq(0).sum().item() > 0, 'training drops channels');
    d.eval();
    assert.equal(d.forward(x), x);
    const want = 'dropout2d: expected input of 4 dims [N, C, H, W], got [8, 2, 2]';
    assert.throws(() => F.dropout2d(randn([8, 2, 2]), 0.5), (e: unknown) => e instanceof PansegError && e.message === want, want);
  }));
});

describe('oneHot', () => {
  for (const c of refCases('oneHot/')) it(c.name, () => checkCase(c, ({ x }, p) => F.oneHot(x, p.numClasses), EXACT));
});

describe('autocast bfloat16 (CPU)', () => {
  it('conv2d runs in bfloat16: same output as torch.autocast, close to float32', () => {
    const c = refCase('autocast/conv2d_bf16');
    tidy(() => {
      const [x, w, b] = ['x', 'w', 'b'].map((k) => c.input(k));
      const y = autocast(() => F.conv2d(x, w, b, { padding: 1 }));
      assert.equal(y.dtype, 'bfloat16');
      // Same kernel as PyTorch's autocast: bf16 results agree to within one bf16 ulp (2^-8 relative).
      assertClose(y, c.output('y'), { atol: 1e-2, rtol: 2 ** -8 }, 'bf16 vs torch bf16');
      // Against float32: bf16 inputs carry 8 significant bits; |y| ~ 1-5 with 72 products each.
      assertClose(y, c.output('fp32'), { atol: 0.1, rtol: 0.02 }, 'bf16 vs fp32');
      const y32 = F.conv2d(x, w, b, { padding: 1 });
      assert.equal(y32.dtype, 'float32', 'autocast is off again after the scope');
    });
  });
  it('nested regions restore the outer state, and a region that fails to start changes nothing', () => tidy(() => {
    const x = randn([1, 2, 4, 4]);
    const w = randn([2, 2, 1, 1]);
    const conv = () => F.conv2d(x, w).dtype;
    autocast(() => {
      assert.equal(autocast(conv, { enabled: false }), 'float32');
      assert.equal(conv(), 'bfloat16', 'the outer region is on again');
    });
    assert.equal(conv(), 'float32');
    // fp16 autocast on a CPU is refused by libtorch 1.13 (later versions accept it).
    try { autocast(() => 0, { dtype: 'float16' }); } catch { /* refused: nothing may have changed */ }
    assert.equal(conv(), 'float32');
    assert.equal(autocast(conv), 'bfloat16');
  }));
  it('linear runs in bfloat16 and softmax stays float32, as torch.autocast', () => {
    const c = refCase('autocast/linear_softmax');
    tidy(() => {
      const { y, s } = autocast(() => {
        const y = F.linear(c.input('x'), c.input('w'));
        return { y, s: F.softmax(y, 1) };
      });
      assert.equal(y.dtype, c.dtype('y'));
      assert.equal(s.dtype, c.dtype('softmax'));
      assertClose(y, c.output('y'), { atol: 1e-2, rtol: 2 ** -8 }, 'linear');
      assertClose(s, c.output('softmax'), { atol: 1e-3, rtol: 1e-2 }, 'softmax');
    });
  });
  it('nested and disabled scopes restore the previous state', () => tidy(() => {
    const x = randn([1, 2, 4, 4]);
    const w = randn([2, 2, 3, 3]);
    const inner = autocast(() => autocast(() => F.conv2d(x, w), { enabled: false }));
    assert.equal(inner.dtype, 'float32');
    const after = autocast(() => { autocast(() => zeros([1]), { enabled: false }); return F.conv2d(x, w); });
    assert.equal(after.dtype, 'bfloat16');
  }));
});
