// Losses against PyTorch: crossEntropy (ignoreIndex, class weights, reductions, label smoothing), nllLoss.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { F, tensor, tidy } from '../../src/engine/index.js';
import { ACCUM, checkCase, refCases } from './ref-cases.js';

describe('crossEntropy (a reduction: atol 1e-5 + rtol 1e-5)', () => {
  for (const c of refCases('crossEntropy/')) {
    it(c.name, () => checkCase(c, ({ x, t, w }, p) => F.crossEntropy(x, t, { weight: w ?? null, ...p }), ACCUM));
    // Channels-last logits take the native path that reads them as [N*H*W, C] rows: same values and gradients.
    if (c.name.includes('2d')) continue;
    it(`${c.name}, channels-last logits`, () => checkCase(c, ({ x, t, w }, p) => {
      const cl = x.contiguous('channelsLast');
      assert.ok(!cl.isContiguous() && cl.isContiguous('channelsLast'));
      return F.crossEntropy(cl, t, { weight: w ?? null, ...p });
    }, ACCUM));
  }
  it('is NaN when every target is ignored and reduction is mean (as PyTorch)', () => tidy(() => {
    const loss = F.crossEntropy(tensor([[1, 2], [0, 1]]), tensor([255, 255], undefined, { dtype: 'int64' }), { ignoreIndex: 255 });
    assert.ok(Number.isNaN(loss.item()));
  }));
});

describe('binaryCrossEntropyWithLogits', () => {
  for (const c of refCases('bceWithLogits/')) {
    it(c.name, () => checkCase(c, ({ x, t, w, pw }, p) => F.binaryCrossEntropyWithLogits(x, t, { weight: w, posWeight: pw, ...p }), ACCUM));
  }
});

describe('nllLoss', () => {
  for (const c of refCases('nllLoss/')) {
    it(c.name, () => checkCase(c, ({ x, t, w }, p) => F.nllLoss(x, t, { weight: w ?? null, ...p }), ACCUM));
  }
});
